package verify

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"golang.org/x/sync/errgroup"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/storage"
)

// Severity grades a Finding.
type Severity int

// Severities, from least to most serious.
const (
	Info    Severity = iota // worth knowing, nothing is wrong with the data (an orphan object)
	Warning                 // suspicious but every check passed (a manifest marked unverified)
	Error                   // damaged, missing, or could not be checked
)

// String returns "info", "warning" or "error".
func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	}
	return "error"
}

// MarshalText makes a Severity a JSON string.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Finding codes: what kind of problem a Finding is. Callers branch on them
// (the CLI maps CodeIO to "could not read" and CodeIdentity to a usage
// problem rather than damage).
const (
	CodeManifest   = "manifest"  // manifest unreadable or insane
	CodeMissing    = "missing"   // object (or requested snapshot) does not exist
	CodeSize       = "size"      // stored or raw size differs from the manifest
	CodeSHA256     = "sha256"    // stored bytes differ from the manifest's sha256
	CodeIdentity   = "identity"  // encrypted and no (matching) identity was given
	CodeDecode     = "decode"    // cannot decrypt or decompress
	CodeFormat     = "format"    // the RDB does not parse (offset in the message)
	CodeChecksum   = "checksum"  // CRC-64 status differs from the manifest
	CodeCensus     = "census"    // key counts differ from the manifest
	CodeDigest     = "digest"    // DEBUG DIGEST differs from the manifest
	CodeOrphan     = "orphan"    // data object without a manifest (info)
	CodeTempFile   = "temp-file" // staging file a killed writer left (info; prune removes it)
	CodeIO         = "io"        // the backend failed to read (not damage)
	CodeUnverified = "unverified"
)

// Finding is one problem (or notable fact) about one object.
type Finding struct {
	Snapshot string   `json:"snapshot,omitempty"` // snapshot id, when the finding is about one
	Object   string   `json:"object"`             // object key the finding is about
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	Message  string   `json:"message"`
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s: %s", f.Severity, f.Object, f.Message)
}

// Item is the result of checking one object (a snapshot with its data).
type Item struct {
	Kind     string        `json:"kind"` // "snapshot"; checkers add their own kinds
	ID       string        `json:"id"`
	Object   string        `json:"object"`
	Bytes    int64         `json:"bytes"` // stored bytes read
	Keys     int64         `json:"keys"`  // keys parsed
	Duration time.Duration `json:"-"`
	Findings []Finding     `json:"findings"`
}

// OK reports whether the item has no error finding.
func (it *Item) OK() bool {
	for _, f := range it.Findings {
		if f.Severity == Error {
			return false
		}
	}
	return true
}

// Checker verifies one kind of repository object. The snapshot check is
// built in; log shipping adds a Checker for segments and generations. Check
// calls report once per object it checked, from one goroutine, and returns
// an error only when it could not check at all (a listing failed, ctx ended).
type Checker interface {
	Check(ctx context.Context, b storage.Backend, opts *Options, report func(Item)) error
}

// Options select what Run checks.
type Options struct {
	// IDs restricts the check to these snapshots; empty means all.
	IDs []string
	// SamplePercent, when in (0, 100), checks only that share of the
	// selected snapshots, chosen by hashing their ids (see Sample).
	SamplePercent float64
	// Identities decrypt encrypted objects.
	Identities []age.Identity
	// Parallel is the number of objects checked at once; 0 means
	// DefaultParallel.
	Parallel int
	// Checkers run after the snapshot check, in order.
	Checkers []Checker
	// OnItem, when set, is called once per checked object, in snapshot
	// order, from one goroutine at a time.
	OnItem func(Item)
	// Progress, when set, receives increments of stored bytes read. It may
	// be called from several goroutines at once.
	Progress func(bytes int64)
	// Now is the clock for the census's "already expired" count (time.Now if nil).
	Now func() time.Time
}

// Summary is what Run found.
type Summary struct {
	Snapshots int `json:"snapshots"` // snapshot manifests in the repository
	Checked   int `json:"checked"`   // objects checked (snapshots and checkers' objects)
	// ByKind counts the objects checked by Item.Kind (snapshot, segment,
	// generation).
	ByKind   map[string]int `json:"checked_by_kind"`
	Findings []Finding      `json:"findings"`
}

// Add counts o (another source's summary) into s.
func (s *Summary) Add(o *Summary) {
	s.Snapshots += o.Snapshots
	s.Checked += o.Checked
	if s.ByKind == nil {
		s.ByKind = map[string]int{}
	}
	for k, n := range o.ByKind {
		s.ByKind[k] += n
	}
	s.Findings = append(s.Findings, o.Findings...)
}

// OK reports whether nothing is damaged, missing or unreadable (info and
// warnings allowed).
func (s *Summary) OK() bool {
	for _, f := range s.Findings {
		if f.Severity == Error {
			return false
		}
	}
	return true
}

// Damaged reports whether some finding is damage or a missing object, as
// opposed to a read failure or a missing identity.
func (s *Summary) Damaged() bool {
	for _, f := range s.Findings {
		if f.Severity == Error && f.Code != CodeIO && f.Code != CodeIdentity {
			return true
		}
	}
	return false
}

// Has reports whether some error finding has code.
func (s *Summary) Has(code string) bool {
	for _, f := range s.Findings {
		if f.Severity == Error && f.Code == code {
			return true
		}
	}
	return false
}

// Run checks the repository in b and returns every finding. It returns an
// error only when the repository cannot be checked at all (the listing
// fails, ctx ends); everything else is a Finding.
func Run(ctx context.Context, b storage.Backend, opts Options) (*Summary, error) {
	ctx = catalog.Direct(ctx) // check the manifests themselves, not the index
	sum := &Summary{Findings: []Finding{}, ByKind: map[string]int{}}
	var mu sync.Mutex
	add := func(it Item) {
		mu.Lock()
		sum.Checked++
		sum.ByKind[it.Kind]++
		sum.Findings = append(sum.Findings, it.Findings...)
		mu.Unlock()
		if opts.OnItem != nil {
			opts.OnItem(it)
		}
	}
	ids, err := listManifests(ctx, b)
	if err != nil {
		return nil, err
	}
	sum.Snapshots = len(ids)
	selected := ids
	if len(opts.IDs) > 0 {
		selected = dedupe(opts.IDs)
	}
	if p := opts.SamplePercent; p > 0 && p < 100 {
		selected = Sample(selected, p)
	}
	if err := checkSnapshots(ctx, b, &opts, selected, add); err != nil {
		return nil, err
	}
	if len(opts.IDs) == 0 {
		orphans, err := findOrphans(ctx, b, ids)
		if err != nil {
			return nil, err
		}
		sum.Findings = append(sum.Findings, orphans...)
		if it := checkLease(ctx, b); it != nil {
			add(*it)
		}
	}
	for _, c := range opts.Checkers {
		if err := c.Check(ctx, b, &opts, add); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

// checkLease reads the writers' lease: nil when it is absent or sound, an
// item with the finding when it cannot be read or parsed (a damaged lease
// blocks every writer: agent, ship, prune).
func checkLease(ctx context.Context, b storage.Backend) *Item {
	_, err := catalog.ReadLease(ctx, b)
	if err == nil || errors.Is(err, storage.ErrNotExist) || ctx.Err() != nil {
		return nil
	}
	f := Finding{Object: catalog.LeaseKey, Severity: Error, Code: CodeIO, Message: err.Error()}
	if pack.VerificationFailed(err) {
		f.Code = CodeManifest
		f.Message = fmt.Sprintf("the lease is damaged (%v): writers (agent, ship, prune) cannot take it; when none runs, delete %s", err, catalog.LeaseKey)
	}
	return &Item{Kind: "lease", ID: "lease", Object: catalog.LeaseKey, Findings: []Finding{f}}
}

// listManifests returns the ids of every snapshot manifest, oldest first.
func listManifests(ctx context.Context, b storage.Backend) ([]string, error) {
	var ids []string
	err := b.List(ctx, catalog.SnapshotPrefix, func(oi storage.ObjectInfo) error {
		name := strings.TrimPrefix(oi.Key, catalog.SnapshotPrefix)
		if strings.HasSuffix(name, ".json") && !strings.Contains(name, "/") {
			ids = append(ids, strings.TrimSuffix(name, ".json"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots in %s: %w", b.Location(), err)
	}
	sort.Strings(ids)
	return ids, nil
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Sample returns ceil(percent% of len(ids)) ids (at least one when percent
// > 0 and ids is not empty): those whose sha256 is smallest. The choice
// depends only on the ids, so it is stable across runs, and it changes
// little when snapshots are added or removed. The result keeps the order of
// ids.
func Sample(ids []string, percent float64) []string {
	if percent >= 100 || len(ids) == 0 {
		return ids
	}
	if percent <= 0 {
		return nil
	}
	n := int(math.Ceil(float64(len(ids)) * percent / 100))
	n = max(1, min(n, len(ids)))
	type h struct {
		v uint64
		i int
	}
	hs := make([]h, len(ids))
	for i, id := range ids {
		s := sha256.Sum256([]byte(id))
		hs[i] = h{binary.BigEndian.Uint64(s[:8]), i}
	}
	sort.Slice(hs, func(a, b int) bool { return hs[a].v < hs[b].v || hs[a].v == hs[b].v && hs[a].i < hs[b].i })
	keep := make([]int, n)
	for k := range n {
		keep[k] = hs[k].i
	}
	slices.Sort(keep)
	out := make([]string, n)
	for k, i := range keep {
		out[k] = ids[i]
	}
	return out
}

// DefaultParallel is how many snapshots verify checks at once when not
// told: one per 4 CPUs, at least one, at most the backend's connections.
// A check keeps about 4 cores busy by itself (unsealing ahead, the reader,
// the digest on digest.Workers() goroutines), so more at once would only
// add their memory (each holds its own buffers, and the Go heap's goal is
// twice what is live): on 2 CPUs two at once took 39 MB of anonymous
// memory on the big values, one 25 MB.
func DefaultParallel(b storage.Backend) int {
	return min(max(1, runtime.GOMAXPROCS(0)/4), max(1, b.Properties().Connections))
}

// checkSnapshots checks ids with bounded parallelism and hands the items to
// add in the order of ids.
func checkSnapshots(ctx context.Context, b storage.Backend, opts *Options, ids []string, add func(Item)) error {
	par := opts.Parallel
	if par <= 0 {
		par = DefaultParallel(b)
	}
	results := make([]*Item, len(ids))
	var (
		mu   sync.Mutex
		next int
	)
	// flush emits the completed prefix, in order, from one goroutine at a time.
	flush := func() {
		for {
			mu.Lock()
			if next >= len(results) || results[next] == nil {
				mu.Unlock()
				return
			}
			it := results[next]
			results[next] = nil
			next++
			add(*it)
			mu.Unlock()
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(par)
	for i, id := range ids {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			it, err := checkOne(gctx, b, id, opts)
			if err != nil {
				return err
			}
			mu.Lock()
			results[i] = it
			mu.Unlock()
			flush()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// sanity checks a manifest's internal consistency.
func sanity(snap *catalog.Snapshot, key string) []Finding {
	var fs []Finding
	bad := func(sev Severity, format string, args ...any) {
		fs = append(fs, Finding{Snapshot: snap.ID, Object: key, Severity: sev, Code: CodeManifest, Message: fmt.Sprintf(format, args...)})
	}
	if want := catalog.SnapshotDataKey(snap.ID, snap.Object.Encryption != ""); snap.Object.Key != want {
		bad(Warning, "data object key %s is not the standard %s", snap.Object.Key, want)
	}
	if snap.EndTime.Before(snap.StartTime) {
		bad(Error, "end time %s is before start time %s", snap.EndTime.Format(time.RFC3339), snap.StartTime.Format(time.RFC3339))
	}
	var keys, expires int64
	for _, d := range snap.Census.DBs {
		keys += d.Keys
		expires += d.Expires
	}
	if keys != snap.Census.Keys || expires != snap.Census.Expires {
		bad(Error, "census totals (%d keys, %d with a TTL) differ from the sum over its dbs (%d, %d)", snap.Census.Keys, snap.Census.Expires, keys, expires)
	}
	if d := snap.Digest; d != "" && (len(d) != 40 || strings.Trim(d, "0123456789abcdef") != "") {
		bad(Error, "digest %q is not 40 hex digits", d)
	}
	return fs
}

// checkOne reads the manifest of id and checks its data.
func checkOne(ctx context.Context, b storage.Backend, id string, opts *Options) (*Item, error) {
	key := catalog.SnapshotManifestKey(id)
	it := &Item{Kind: "snapshot", ID: id, Object: key}
	start := time.Now()
	defer func() { it.Duration = time.Since(start) }()
	snap, err := catalog.ReadSnapshot(ctx, b, id)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		f := Finding{Snapshot: id, Object: key, Severity: Error, Code: CodeManifest, Message: err.Error()}
		var me *catalog.ManifestError
		switch {
		case errors.Is(err, catalog.ErrNoSnapshot):
			f.Code, f.Message = CodeMissing, "no such snapshot (no manifest)"
		case errors.As(err, &me):
			f.Message = "manifest unusable: " + me.Err.Error()
		case pack.VerificationFailed(err):
			// the store's own checksum: the manifest's bytes are damaged
			f.Message = "manifest damaged: " + err.Error()
		default:
			f.Code = CodeIO
		}
		it.Findings = append(it.Findings, f)
		return it, nil
	}
	if snap.ID != id {
		it.Findings = append(it.Findings, Finding{Snapshot: id, Object: key, Severity: Error, Code: CodeManifest,
			Message: fmt.Sprintf("manifest names snapshot %q, its key says %q", snap.ID, id)})
	}
	it.Findings = append(it.Findings, sanity(snap, key)...)
	if !snap.Verified {
		it.Findings = append(it.Findings, Finding{Snapshot: id, Object: key, Severity: Warning, Code: CodeUnverified,
			Message: "manifest says the snapshot was not verified when it was taken"})
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	fs, keys, n, err := CheckSnapshot(ctx, b, snap, CheckOptions{Identities: opts.Identities, Progress: opts.Progress, Now: now})
	if err != nil {
		return nil, err
	}
	it.Object = snap.Object.Key
	it.Findings = append(it.Findings, fs...)
	it.Keys, it.Bytes = keys, n
	return it, nil
}
