// Package synth builds a snapshot of a source from what the repository
// already holds, without contacting the source: the newest snapshot of a
// log generation (its base, or a snapshot synthesized earlier) and the
// shipped segments after it are replayed into a scratch server (the PITR
// rebuild, pitr.Plan.Rebuild), which saves the state; the RDB is then
// stored like any other snapshot (snapshot.Store: CRC-64, full parse,
// census, digest) and its digest proven against the scratch server's
// DEBUG DIGEST before the manifest is written. The manifest says
// method "log", the generation and the offset of the state.
package synth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/digest"
	"redback/internal/pack"
	"redback/internal/pitr"
	"redback/internal/progress"
	"redback/internal/rdb"
	"redback/internal/restore"
	"redback/internal/scratch"
	"redback/internal/serverver"
	"redback/internal/snapshot"
	"redback/internal/storage"
)

// Reasons a snapshot cannot be synthesized (NoLogError.Reason; the label
// of redback_snapshot_fallback_total).
const (
	ReasonNoLog  = "no_log"  // no log generation: shipping is off or never ran
	ReasonNoBase = "no_base" // the newest generation has no usable base snapshot
	ReasonGap    = "gap"     // the log has a hole before the point
	ReasonEnded  = "ended"   // the newest generation ended: nothing continues it yet
)

// ErrNoLog is wrapped by a *NoLogError.
var ErrNoLog = errors.New("no usable log to synthesize a snapshot from")

// NoLogError says why the repository's log cannot give the snapshot; a
// caller that can reach the source takes a normal snapshot instead.
type NoLogError struct {
	Reason string // one of the Reason constants
	Detail string
}

func (e *NoLogError) Error() string { return fmt.Sprintf("%v (%s): %s", ErrNoLog, e.Reason, e.Detail) }
func (e *NoLogError) Unwrap() error { return ErrNoLog }

// Options configure Build.
type Options struct {
	// Backend is the source's view of the repository (written under its
	// lease).
	Backend storage.Backend
	// Pack seals the new snapshot. When the log or its base is encrypted,
	// Recipients are required (the snapshot would be stored in the clear).
	Pack pack.Options
	// Identities decrypt an encrypted base and segments.
	Identities []age.Identity
	// Target is the point; the zero Target is the newest durable point of
	// the newest generation.
	Target pitr.Target
	// RedisServer is the scratch server binary ("": scratch.Choose).
	RedisServer string
	// TempDir is where the scratch server's dir is made ("": os.TempDir()):
	// it needs about the dataset's size twice (AOF dir and dump.rdb).
	TempDir  string
	Progress *progress.Bar // may be nil
	Log      *slog.Logger  // may be nil
}

// Result is what Build did.
type Result struct {
	Snapshot *catalog.Snapshot `json:"snapshot"`
	// Base is the snapshot replayed from: the generation's base or the
	// newest snapshot synthesized before the point.
	Base     string `json:"base_snapshot"`
	Segments int    `json:"segments"`
	Commands int64  `json:"commands"`
	// Server is the scratch server build.
	Server serverver.Build `json:"server"`
	// ScratchDigest is the scratch server's DEBUG DIGEST, equal to the
	// snapshot's (in the server's score format).
	ScratchDigest string `json:"scratch_digest"`
	// ScratchRSSBytes is the scratch server's peak resident memory
	// (INFO memory used_memory_rss at the end; the dataset is all loaded
	// then) and ScratchCPUSeconds its CPU time (user + sys), both read
	// from the server after SAVE.
	ScratchRSSBytes   int64   `json:"scratch_rss_bytes"`
	ScratchCPUSeconds float64 `json:"scratch_cpu_seconds"`
	// Rebuild is the time to write the AOF dir and load it, Save the
	// SAVE, Store the verified upload.
	Rebuild time.Duration `json:"-"`
	Save    time.Duration `json:"-"`
	Store   time.Duration `json:"-"`
}

// Build synthesizes the snapshot at o.Target and publishes it. A
// repository whose log cannot give it returns a *NoLogError.
func Build(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := o.Backend
	tg := o.Target
	if tg.Kind == 0 {
		var err error
		if tg, err = newestPoint(ctx, b); err != nil {
			return nil, err
		}
	}
	p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{Identities: o.Identities})
	if err != nil {
		if errors.Is(err, pitr.ErrGap) {
			return nil, &NoLogError{Reason: ReasonGap, Detail: err.Error()}
		}
		return nil, err
	}
	if len(p.Skipped) > 0 {
		return nil, errors.New("a synthesized snapshot replays the whole log: no skipped commands")
	}
	encrypted := p.Base.Object.Encryption != ""
	for _, s := range p.Segments {
		encrypted = encrypted || s.Object.Encryption != ""
	}
	if encrypted && o.Pack.Recipients == nil {
		return nil, errors.New("the base snapshot or the log is encrypted: give recipients for the synthesized snapshot (--encrypt-to), or it would be stored in the clear")
	}
	res := &Result{Base: p.Base.ID, Segments: len(p.Segments)}
	src := p.Base.Source
	src.ReplID, src.Offset = replIDAt(p.Generation, p.Base, p.Offset), p.Offset
	log.Info("synthesizing a snapshot from the log", "generation", p.Generation.ID, "base", p.Base.ID,
		"segments", len(p.Segments), "offset", p.Offset)
	rres, err := p.Rebuild(ctx, o.TempDir, o.RedisServer, restore.Options{}, func(ctx context.Context, s *scratch.Server, build serverver.Build) error {
		res.Server = build
		res.Rebuild = time.Since(start)
		c := s.Client(0)
		defer c.Close()
		d, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
		if err != nil {
			return fmt.Errorf("scratch server DEBUG DIGEST: %w", err)
		}
		res.ScratchDigest = d
		t := time.Now()
		if err := c.Do(ctx, "SAVE").Err(); err != nil {
			return fmt.Errorf("scratch server SAVE: %w", err)
		}
		res.Save = time.Since(t)
		if info, err := c.Info(ctx, "memory", "cpu").Result(); err == nil {
			res.ScratchRSSBytes = int64(infoFloat(info, "used_memory_rss"))
			res.ScratchCPUSeconds = infoFloat(info, "used_cpu_user") + infoFloat(info, "used_cpu_sys")
		}
		s.Stop()
		path := filepath.Join(s.Dir, "dump.rdb")
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			o.Progress.SetTotal(st.Size())
		}
		t = time.Now()
		res.Snapshot, err = snapshot.Store(ctx, f, snapshot.Options{
			Backend: b, Pack: o.Pack, Method: catalog.MethodLog, Source: src, Progress: o.Progress, Log: log,
			Generation: p.Generation.ID, Start: start,
			Check: func(snap *catalog.Snapshot) error { return proveDigest(ctx, snap, path, build, d) },
		})
		res.Store = time.Since(t)
		return err
	})
	if rres != nil {
		res.Commands = rres.Commands
	}
	if err != nil {
		return res, err
	}
	return res, nil
}

// newestPoint is the newest durable point of the newest generation, or a
// *NoLogError when that generation cannot give a snapshot of the source
// as it is now.
func newestPoint(ctx context.Context, b storage.Backend) (pitr.Target, error) {
	ws, err := pitr.Windows(ctx, b)
	if err != nil {
		return pitr.Target{}, err
	}
	if len(ws) == 0 {
		return pitr.Target{}, &NoLogError{Reason: ReasonNoLog, Detail: "the repository holds no log generation (is shipping on?)"}
	}
	w := ws[len(ws)-1] // oldest first
	switch {
	case w.Problem != "":
		return pitr.Target{}, &NoLogError{Reason: ReasonNoBase, Detail: fmt.Sprintf("the newest generation %s is not restorable: %s", w.Generation, w.Problem)}
	case w.Ended:
		return pitr.Target{}, &NoLogError{Reason: ReasonEnded, Detail: fmt.Sprintf("the newest generation %s ended at offset %d (%s) and no shipper continues it", w.Generation, w.ToOffset, w.EndReason)}
	}
	for _, g := range w.Gaps {
		if !g.Overlap {
			return pitr.Target{}, &NoLogError{Reason: ReasonGap, Detail: fmt.Sprintf("generation %s is missing the log between offsets %d and %d", w.Generation, g.From, g.To)}
		}
	}
	t := pitr.Latest()
	t.Generation = w.Generation
	return t, nil
}

// replIDAt is the replication id of generation g's history at offset off:
// its base's, or that of the last failover at or before off.
func replIDAt(g *catalog.Generation, base *catalog.Snapshot, off int64) string {
	id := base.Source.ReplID
	if id == "" {
		id = g.ReplID
	}
	for _, f := range g.Failovers {
		if f.Offset <= off {
			id = f.ReplID
		}
	}
	return id
}

// proveDigest requires the stored RDB's digest to be the scratch server's
// DEBUG DIGEST got. The manifest's digest uses the Redis 7.0 score format;
// a server of 7.2 or later formats sorted-set scores otherwise, so with
// sorted sets the RDB at path is digested again in its format.
func proveDigest(ctx context.Context, snap *catalog.Snapshot, path string, build serverver.Build, got string) error {
	want, what := snap.Digest, "the snapshot's digest"
	if sf := scoreFormat(build); sf != digest.Score70 && snap.Census.Types["zset"] > 0 {
		d, err := fileDigest(ctx, path, sf)
		if err != nil {
			return err
		}
		want, what = d, "the snapshot's digest in "+build.Family+" "+sf.String()+" score format"
	}
	if got != want {
		return &DigestError{Server: got, Snapshot: want, What: what}
	}
	return nil
}

// DigestError is a synthesized snapshot whose digest is not the scratch
// server's: nothing was published (a failed verification, exit code 3).
type DigestError struct{ Server, Snapshot, What string }

func (e *DigestError) Error() string {
	return fmt.Sprintf("the scratch server's DEBUG DIGEST %s differs from %s %s: the saved RDB does not hold what the server held; nothing was published", e.Server, e.What, e.Snapshot)
}

// VerificationFailed marks a failed verification.
func (e *DigestError) VerificationFailed() bool { return true }

// scoreFormat is how build formats sorted-set scores in DEBUG DIGEST.
func scoreFormat(build serverver.Build) digest.ScoreFormat {
	if build.Family == "valkey" {
		return digest.Score72
	}
	if v, _ := restore.RDBVersionFor(build.Version); v >= 11 {
		return digest.Score72
	}
	return digest.Score70
}

// fileDigest is the DEBUG DIGEST of the RDB file at path, in score format
// sf.
func fileDigest(ctx context.Context, path string, sf digest.ScoreFormat) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d := digest.New(digest.Options{ScoreFormat: sf})
	rr, err := rdb.NewReader(f, rdb.Options{SkipValueCheck: true, StreamValues: d.Stream, StreamStrings: true})
	if err != nil {
		return "", err
	}
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return "", ctx.Err()
		}
		rec, err := rr.Next()
		if err == io.EOF {
			return d.Sum(), nil
		}
		if err != nil {
			return "", err
		}
		if rec.Kind == rdb.RecordKey {
			if err := d.Add(rec); err != nil {
				return "", err
			}
		}
	}
}

// infoFloat reads field of an INFO reply (0 when absent).
func infoFloat(info, field string) float64 {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
