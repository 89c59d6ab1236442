package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/pitr"
	"redback/internal/storage"
)

// Finding codes of the log checker.
const (
	CodeGap     = "gap"     // offsets missing between two segments of a generation
	CodeOverlap = "overlap" // two segments cover the same offsets (warning)
	CodeBase    = "base"    // a generation's base snapshot is missing or unverified
	CodeSegment = "segment" // a segment's content does not match its manifest
)

// Segments is the Checker for shipped logs: for every generation, its base
// snapshot must exist, its segments must be contiguous from the base's
// offset (gaps are errors, overlaps warnings), and every segment (or the
// sampled share of them) must read back completely and match its manifest
// and index. With Options.IDs set (verifying chosen snapshots) it checks
// nothing.
type Segments struct{}

// Check implements Checker.
func (Segments) Check(ctx context.Context, b storage.Backend, opts *Options, report func(Item)) error {
	if len(opts.IDs) > 0 {
		return nil
	}
	gens, err := catalog.ListGenerations(ctx, b)
	if err != nil {
		report(Item{Kind: "generation", ID: "*", Object: catalog.GenerationPrefix, Findings: []Finding{{
			Object: catalog.GenerationPrefix, Severity: Error, Code: CodeManifest, Message: err.Error()}}})
		return nil
	}
	var snaps []*catalog.Snapshot // listed once, when a log's head is missing
	for _, g := range gens {
		if err := ctx.Err(); err != nil {
			return err
		}
		gi := Item{Kind: "generation", ID: g.ID, Object: catalog.GenerationKey(g.ID)}
		add := func(code string, sev Severity, obj, format string, args ...any) {
			gi.Findings = append(gi.Findings, Finding{Object: obj, Severity: sev, Code: code, Message: fmt.Sprintf(format, args...)})
		}
		if base, err := catalog.ReadSnapshot(ctx, b, g.BaseSnapshot); err != nil {
			add(CodeBase, Error, catalog.SnapshotManifestKey(g.BaseSnapshot), "base snapshot %s of generation %s: %v", g.BaseSnapshot, g.ID, err)
		} else if !base.Verified {
			add(CodeBase, Error, catalog.SnapshotManifestKey(g.BaseSnapshot), "base snapshot %s is not verified", g.BaseSnapshot)
		}
		segs, err := catalog.ListSegments(ctx, b, g.ID)
		if err != nil {
			add(CodeManifest, Error, catalog.SegmentPrefix(g.ID), "%v", err)
			report(gi)
			continue
		}
		gaps := catalog.Contiguity(g, segs)
		if len(segs) > 0 && segs[0].Start > g.StartOffset {
			// The log's head is gone: retention drops it once a snapshot
			// synthesized from the log holds the state after it.
			if snaps == nil {
				if snaps, _, err = catalog.ListSnapshots(ctx, b); err != nil {
					return err
				}
			}
			if a := catalog.LogAnchor(g, segs, snaps); a != nil {
				gaps = catalog.GapsAfter(gaps, a.Source.Offset)
			}
		}
		for _, gap := range gaps {
			if gap.Overlap {
				add(CodeOverlap, Warning, catalog.SegmentPrefix(g.ID), "segments overlap on offsets %d-%d", gap.From, gap.To)
			} else {
				add(CodeGap, Error, catalog.SegmentPrefix(g.ID), "log missing between offsets %d and %d: no point in that range is restorable", gap.From, gap.To)
			}
		}
		// The heartbeat (optional) makes an idle end of the log durable
		// and bounds the times of what a restarted ship stores next:
		// readers and ship ignore one they cannot read, so say so here.
		q, qerr := catalog.ReadQuiet(ctx, b, g.ID)
		if qerr != nil {
			code := CodeIO
			if pack.VerificationFailed(qerr) {
				code = CodeManifest
			}
			add(code, Error, catalog.QuietKey(g.ID), "quiet record %s: %v (ship ignores it; delete it when no ship runs)", catalog.QuietKey(g.ID), qerr)
		}
		if n := len(segs); g.Ended && n > 0 && segs[n-1].End < g.EndOffset && !(q.Covers(g.ID, segs[n-1].End) && q.Offset >= g.EndOffset) {
			add(CodeGap, Error, catalog.SegmentPrefix(g.ID), "generation ended at offset %d but its log stops at %d", g.EndOffset, segs[n-1].End)
		}
		report(gi)
		keys := make([]string, len(segs))
		byKey := map[string]*catalog.Segment{}
		for i, s := range segs {
			keys[i] = catalog.SegmentKey(g.ID, s.Start, s.End)
			byKey[keys[i]] = s
		}
		if p := opts.SamplePercent; p > 0 && p < 100 {
			keys = Sample(keys, p)
		}
		for _, k := range keys {
			s := byKey[k]
			start := time.Now()
			it := Item{Kind: "segment", ID: k, Object: s.Object.Key, Bytes: s.Object.StoredBytes}
			if err := pitr.CheckSegment(ctx, b, opts.Identities, s); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				it.Findings = append(it.Findings, segmentFinding(s, err))
			}
			it.Duration = time.Since(start)
			if opts.Progress != nil {
				opts.Progress(s.Object.StoredBytes)
			}
			report(it)
		}
	}
	return nil
}

func segmentFinding(s *catalog.Segment, err error) Finding {
	f := Finding{Object: s.Object.Key, Severity: Error, Code: CodeSegment, Message: err.Error()}
	var ie *pack.IntegrityError
	switch {
	case errors.Is(err, storage.ErrNotExist):
		f.Code = CodeMissing
	case errors.As(err, &ie):
		f.Code = CodeSHA256
	case !pack.VerificationFailed(err):
		f.Code = CodeIO // could not be read: not damage
	}
	return f
}
