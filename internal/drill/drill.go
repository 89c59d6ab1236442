package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/digest"
	"redback/internal/pack"
	"redback/internal/progress"
	"redback/internal/restore"
	"redback/internal/scratch"
	"redback/internal/storage"
)

// DefaultSampleKeys is how many keys are compared value by value.
const DefaultSampleKeys = 100

// Phase names, in the order they run.
const (
	PhaseFetch   = "fetch"   // download the stored object
	PhaseRestore = "restore" // decrypt, decompress, verify and write DIR/dump.rdb
	PhaseLoad    = "load"    // scratch server start until it serves (loading:0, PING)
	PhaseReplay  = "replay"  // point in time only: the second path, Plan.ToRedis into a second scratch server
	PhaseChecks  = "checks"  // keys, digest, sample, functions
)

// Check names.
const (
	CheckRestore   = "restore"
	CheckLoad      = "load"
	CheckKeys      = "keys"
	CheckDigest    = "digest"
	CheckSample    = "sample"
	CheckFunctions = "functions"
	CheckReplay    = "replay"
	CheckRTO       = "rto"
)

// Options configure a drill.
type Options struct {
	Backend  storage.Backend
	Snapshot *catalog.Snapshot // what to restore (see Select)
	// At, when set and Snapshot is nil, drills the point in time At: the
	// state a log generation restores to At (see RunAt's contract in Run),
	// or, when no generation covers At, the newest verified snapshot that
	// ended at or before At.
	At time.Time
	// Latest, when set and Snapshot is nil, drills the newest durable point
	// of the log (pitr.Latest), or the newest verified snapshot when the
	// repository holds no restorable log generation.
	Latest bool
	// RedisServer is the redis-server binary; "" looks it up on PATH.
	RedisServer string
	Identities  []age.Identity
	// RTOObjective, when > 0, is the longest acceptable RTO: from the
	// start of the drill to a scratch server serving the restored data
	// (fetch, verified restore, load). The proof checks that follow are a
	// drill's own cost (DEBUG DIGEST blocks the server for O(N)) and are
	// timed separately, not counted in the RTO.
	RTOObjective time.Duration
	// SampleKeys is how many keys are compared value by value; 0 means
	// DefaultSampleKeys, < 0 none.
	SampleKeys int
	// ScratchDir is where the temp dir is made; "" means os.TempDir().
	ScratchDir string
	// NewBar, when set, makes a progress bar for a phase (total bytes, or -1).
	NewBar func(phase string, total int64) *progress.Bar
	// OnPhase, when set, is called as each phase starts.
	OnPhase func(phase string)
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Holder names this drill in the pin it writes; "" makes one.
	Holder string

	// onServer, when set, is called with the scratch server's pid once it runs (tests).
	onServer func(pid int)
}

// Check is one thing the drill proved or failed to prove.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report is the outcome of a drill. OK is true only when every check passed.
type Report struct {
	OK           bool      `json:"ok"`
	Snapshot     string    `json:"snapshot"`
	SnapshotTime time.Time `json:"snapshot_time"`
	Repo         string    `json:"repo"`
	Object       string    `json:"object"`
	StoredBytes  int64     `json:"stored_bytes"`
	RawBytes     int64     `json:"raw_bytes"`
	RedisServer  string    `json:"redis_server"`
	RedisVersion string    `json:"redis_version"`
	// ServerFamily is the scratch server's: "redis" or "valkey".
	ServerFamily string    `json:"server_family"`
	Started      time.Time `json:"started"`
	// Point is what was restored: a point in time of a log generation
	// ("pitr") or a snapshot ("snapshot").
	Point *Point `json:"point,omitempty"`
	// AOFDigest and ReplayDigest are, for a point in time, DEBUG DIGEST of
	// the server that loaded the restored AOF dir and of the server the
	// log was replayed into; DigestMatch says they are equal.
	AOFDigest          string `json:"aof_digest,omitempty"`
	ReplayDigest       string `json:"replay_digest,omitempty"`
	Keys               int64  `json:"keys"`
	ExpectedKeys       int64  `json:"expected_keys"`
	KeysAlreadyExpired int64  `json:"keys_already_expired"`
	// VerifiedBy says how the loaded data was compared with the backup:
	// "digest" (DEBUG DIGEST of the whole dataset, plus the sample by
	// DEBUG DIGEST-VALUE), or "sample" (the server refused DEBUG: key
	// counts and the sample read by DUMP and PEXPIRETIME).
	VerifiedBy          string             `json:"verified_by,omitempty"`
	Digest              string             `json:"digest"`
	ExpectedDigest      string             `json:"expected_digest"`
	DigestMatch         bool               `json:"digest_match"`
	SampleChecked       int                `json:"sample_checked"`
	SampleMismatches    int                `json:"sample_mismatches"`
	Mismatches          []string           `json:"mismatches,omitempty"`
	Functions           []string           `json:"functions"`
	FunctionsOK         bool               `json:"functions_ok"`
	RTOSeconds          float64            `json:"rto_seconds"`   // start to serving: fetch + restore + load
	TotalSeconds        float64            `json:"total_seconds"` // the whole drill, checks included
	RTOObjectiveSeconds float64            `json:"rto_objective_seconds"`
	RTOMet              bool               `json:"rto_met"`
	RPOSeconds          float64            `json:"rpo_seconds"`
	Phases              map[string]float64 `json:"phases"`
	Checks              []Check            `json:"checks"`
	Notes               []string           `json:"notes,omitempty"`
}

// Point kinds.
const (
	PointPITR     = "pitr"
	PointSnapshot = "snapshot"
)

// Point is the state a drill restored.
type Point struct {
	Kind       string    `json:"kind"` // PointPITR or PointSnapshot
	Generation string    `json:"generation,omitempty"`
	Offset     int64     `json:"offset"` // replication offset of the state
	Time       time.Time `json:"time"`   // last command replayed (pitr), snapshot end (snapshot)
	// Requested is the --at time asked for, when one was.
	Requested time.Time `json:"requested,omitzero"`
}

func (r *Report) check(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// Failed returns the checks that failed.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// Select picks the snapshot to drill: the one named id; else the newest
// verified snapshot that ended at or before at (when at is not zero); else
// the newest verified snapshot.
func Select(ctx context.Context, b storage.Backend, id string, at time.Time) (*catalog.Snapshot, error) {
	if id != "" {
		return catalog.ReadSnapshot(ctx, b, id)
	}
	if at.IsZero() {
		return catalog.Latest(ctx, b)
	}
	snaps, _, err := catalog.ListSnapshots(ctx, b)
	if err != nil {
		return nil, err
	}
	for _, s := range snaps { // newest first
		if s.Verified && !s.EndTime.After(at) {
			return s, nil
		}
	}
	if len(snaps) > 0 {
		oldest := snaps[len(snaps)-1]
		return nil, fmt.Errorf("no verified snapshot ended at or before %s (the oldest ended %s): %w",
			at.UTC().Format(time.RFC3339), oldest.EndTime.UTC().Format(time.RFC3339), catalog.ErrNoSnapshot)
	}
	return nil, fmt.Errorf("%s: %w", b.Location(), catalog.ErrNoSnapshot)
}

// Run restores opts.Snapshot into a scratch redis-server through the same
// code path a real recovery uses (restore.ToDir) and proves the result:
// key count, DEBUG DIGEST, a sample of keys value by value with their
// expire times, function libraries, and the RTO objective. The scratch
// server and its files are removed in every case (success, failure, ctx
// cancellation) before Run returns.
//
// A failed check is not an error: the Report says what failed (Report.OK
// false). The error is non-nil when the drill could not run at all (no
// redis-server, the repository is unreadable, ctx ended); the report so far
// is still returned.
//
// With opts.At set and no opts.Snapshot, Run drills a point in time; see
// drillRun.point.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	start := opts.Now()
	if opts.Backend == nil || opts.Snapshot == nil && opts.At.IsZero() && !opts.Latest {
		return nil, errors.New("drill: no snapshot or repository given")
	}
	r := &drillRun{ctx: ctx, opts: opts, start: start}
	if opts.Snapshot == nil {
		rep, err = r.point()
	} else {
		rep, err = r.snapshot(opts.Snapshot, nil)
	}
	if err != nil && rep != nil && ctx.Err() == nil && pack.VerificationFailed(err) {
		// Damage found on a path without its own check (a manifest, a
		// segment index): a failed check all the same, never a crash.
		rep.check(CheckRestore, false, "%s", damage(err))
		err = nil
	}
	rep.TotalSeconds = opts.Now().Sub(start).Seconds()
	rep.OK = err == nil && len(rep.Checks) > 0 && len(rep.Failed()) == 0
	if ctx.Err() == nil {
		if rerr := record(ctx, opts.Backend, rep, err); rerr != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the drill could not be recorded in the repository: %v", rerr))
		}
	}
	return rep, err
}

// record leaves the drill's outcome in the repository (catalog.Drill), for
// the timeline.
func record(ctx context.Context, b storage.Backend, rep *Report, err error) error {
	d := &catalog.Drill{Time: rep.Started, OK: rep.OK, Kind: PointSnapshot, Snapshot: rep.Snapshot,
		RTOSeconds: rep.RTOSeconds, RTOObjectiveSeconds: rep.RTOObjectiveSeconds, RTOMet: rep.RTOMet,
		DigestMatch: rep.DigestMatch, RawBytes: rep.RawBytes}
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	if rep.Point != nil {
		d.Kind, d.Point = rep.Point.Kind, rep.Point.Time
	}
	var failed []string
	for _, c := range rep.Failed() {
		failed = append(failed, c.Name+": "+c.Detail)
	}
	if err != nil {
		failed = append(failed, err.Error())
	}
	d.Detail = strings.Join(failed, "; ")
	return catalog.PutDrill(ctx, b, d)
}

// snapshot drills snap; notes start the report's notes.
func (r *drillRun) snapshot(snap *catalog.Snapshot, notes []string) (*Report, error) {
	opts, start := r.opts, r.start
	r.rep = &Report{Notes: notes,
		Point:    &Point{Kind: PointSnapshot, Generation: snap.Generation, Offset: snap.Source.Offset, Time: snap.EndTime, Requested: opts.At},
		Snapshot: snap.ID, SnapshotTime: snap.EndTime, Repo: opts.Backend.Location(), Object: snap.Object.Key,
		StoredBytes: snap.Object.StoredBytes, RawBytes: snap.Object.RawBytes, Started: start.UTC(),
		ExpectedKeys: snap.Census.Keys, ExpectedDigest: snap.Digest, Phases: map[string]float64{},
		Functions: []string{}, RTOObjectiveSeconds: opts.RTOObjective.Seconds(),
		RPOSeconds: max(0, start.Sub(snap.EndTime).Seconds()),
	}
	rep := r.rep
	var locked error
	if snap.Object.Encryption != "" {
		locked = fmt.Errorf("snapshot %s is encrypted: give --identity FILE (or $REDBACK_IDENTITY_FILE)", snap.ID)
	}
	srv, cleanup, err := r.setUp(snap, "snapshot "+snap.ID, locked)
	if err != nil {
		return rep, err
	}
	defer cleanup()

	// Phase 1: fetch the stored object.
	done := r.phase(PhaseFetch)
	objPath := filepath.Join(srv.Dir, "object")
	ferr := fetch(r.ctx, opts, snap, objPath)
	done()
	if ferr != nil {
		if errors.Is(ferr, storage.ErrNotExist) {
			rep.check(CheckRestore, false, "data object %s is missing from the repository (the manifest of snapshot %s refers to it)", snap.Object.Key, snap.ID)
			return rep, nil
		}
		// the store's own checksum failing (storage.ErrCorrupt) is damage
		return rep, r.restoreFailed(ferr, damage(ferr))
	}

	// Phase 2: decrypt, decompress, verify, write dump.rdb.
	done = r.phase(PhaseRestore)
	res, rerr := restoreDir(r.ctx, opts, snap, objPath, srv.Dir)
	done()
	_ = os.Remove(objPath) // the dump.rdb is what counts now; free the space
	if rerr != nil {
		return rep, r.restoreFailed(rerr, rerr.Error())
	}
	rep.KeysAlreadyExpired = res.KeysExpired
	rep.check(CheckRestore, true, "%s verified (size, sha256, %s, RDB structure and CRC-64); %s of RDB written",
		snap.Object.Key, sealing(snap), progress.HumanBytes(res.Bytes))

	// Phase 3: start the scratch server and wait until it serves.
	maxDB := 0
	for _, d := range snap.Census.DBs {
		maxDB = max(maxDB, d.DB)
	}
	if ok, err := r.load(srv, scratch.Options{Databases: maxDB + 1}, "the RDB", snap.Object.RawBytes); !ok {
		return rep, err
	}

	// Phase 4: prove it.
	p := &snapshotProof{drillRun: r, srv: srv, snap: snap}
	return rep, r.prove(p, "the verified data")
}

func sealing(s *catalog.Snapshot) string {
	if s.Object.Encryption != "" {
		return "decrypted (" + s.Object.Encryption + "), decompressed (" + s.Object.Compression + ")"
	}
	return "decompressed (" + s.Object.Compression + ")"
}

// fetch downloads the stored object to path.
func fetch(ctx context.Context, opts Options, snap *catalog.Snapshot, path string) error {
	rc, err := opts.Backend.Get(ctx, snap.Object.Key, 0, -1)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", snap.Object.Key, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	var bar *progress.Bar
	if opts.NewBar != nil {
		bar = opts.NewBar(PhaseFetch, snap.Object.StoredBytes)
		defer bar.Done()
	}
	var r io.Reader = &ctxReader{ctx: ctx, r: rc}
	if bar != nil {
		r = &progress.Reader{R: r, Bar: bar}
	}
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("fetch %s: %w", snap.Object.Key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// restoreDir runs the restore code path on the fetched object.
func restoreDir(ctx context.Context, opts Options, snap *catalog.Snapshot, objPath, dir string) (*restore.Result, error) {
	var dbs []int
	for _, d := range snap.Census.DBs {
		dbs = append(dbs, d.DB)
	}
	src := restore.Source{
		Name:   "snapshot " + snap.ID,
		Object: snap.Object.Key,
		Size:   snap.Object.RawBytes,
		DBs:    dbs,
		Open: func(ctx context.Context) (io.ReadCloser, error) {
			f, err := os.Open(objPath)
			if err != nil {
				return nil, err
			}
			ur, err := pack.NewReader(f, pack.Expect{Key: snap.Object.Key, Size: snap.Object.StoredBytes,
				SHA256: snap.Object.SHA256, Encrypted: snap.Object.Encryption != ""}, opts.Identities)
			if err != nil {
				f.Close()
				return nil, err
			}
			return readCloser{Reader: ur, close: func() error { f.Close(); return ur.Close() }}, nil
		},
	}
	ro := restore.Options{Now: opts.Now}
	if opts.NewBar != nil {
		bar := opts.NewBar(PhaseRestore, snap.Object.RawBytes)
		defer bar.Done()
		ro.Progress = func(bytes, keys int64) { bar.Add(bytes, keys) }
	}
	return restore.ToDir(ctx, src, dir, ro)
}

// snapshotProof compares the loaded server with the snapshot: the
// manifest's census and digest, and the restored file for the sample.
type snapshotProof struct {
	*drillRun
	srv  *scratch.Server
	snap *catalog.Snapshot
	s    *sampled // read from the restored file by keys
	sf   digest.ScoreFormat
	// noDebug: the server refused DEBUG DIGEST; the sample is read by DUMP.
	noDebug bool
}

// keys compares the key count per db with the census and DEBUG DIGEST
// with the manifest's digest. The sample is read from the restored file
// meanwhile (DEBUG DIGEST blocks the server anyway, on one core; the
// sampler parses on another).
func (p *snapshotProof) keys(ctx context.Context, n int) error {
	rep, snap := p.rep, p.snap
	v, _ := restore.RDBVersionFor(p.ver)
	sf := digest.ScoreFormatFor(v)
	fullDigest := sf != digest.Score70 && snap.Census.Types["zset"] > 0
	type sampleResult struct {
		s   *sampled
		err error
	}
	sctx, cancel := context.WithCancel(ctx)
	sampleDone := make(chan sampleResult, 1)
	go func() {
		s, err := sampleFile(sctx, filepath.Join(p.srv.Dir, "dump.rdb"), n, sf, fullDigest)
		sampleDone <- sampleResult{s, err}
	}()
	waited := false
	defer func() {
		cancel()
		if !waited {
			<-sampleDone
		}
	}()

	got, err := keyspace(ctx, p.srv)
	if err != nil {
		return fmt.Errorf("the scratch server: %w", err)
	}
	want := map[int]int64{}
	for _, d := range snap.Census.DBs {
		want[d.DB] = d.Keys
	}
	for _, k := range got {
		rep.Keys += k
	}
	diffs := keyDiffs(got, want, func(db int) string {
		if _, ok := want[db]; !ok {
			return fmt.Sprintf("db %d has %d keys, the snapshot none", db, got[db])
		}
		return fmt.Sprintf("db %d has %d keys, the snapshot %d", db, got[db], want[db])
	})
	if rep.Keys == snap.Census.Keys && len(diffs) == 0 {
		rep.check(CheckKeys, true, "%d keys in %d dbs, as in the manifest's census", rep.Keys, len(snap.Census.DBs))
	} else {
		rep.check(CheckKeys, false, "%d keys on the server, the manifest says %d; %s", rep.Keys, snap.Census.Keys, strings.Join(diffs, "; "))
	}

	d, err := debugDigest(ctx, p.srv)
	if err != nil && !isRedisError(err) {
		return fmt.Errorf("the scratch server: %w", err)
	}
	sr := <-sampleDone
	waited = true
	if sr.err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("read the sample from the restored file: %w", sr.err)
	}
	p.s = sr.s
	p.sf = sf
	if err != nil {
		// The server refuses DEBUG (a --redis-server built or wrapped
		// without it, a renamed DEBUG): the sample is read by DUMP.
		p.noDebug = true
		rep.VerifiedBy = "sample"
		rep.Notes = append(rep.Notes, fmt.Sprintf("DEBUG DIGEST was refused by the scratch server (%v): the data is verified by the key counts and the sample of keys, read with DUMP and PEXPIRETIME, instead", err))
		return nil
	}
	rep.VerifiedBy = "digest"
	// A 7.2+ server holding sorted sets digests scores in another format
	// than the manifest's: compare with the backup's digest in that format.
	rep.Digest = d
	wantDigest, what := snap.Digest, "the manifest's digest"
	if p.s.digest != "" {
		wantDigest = p.s.digest
		what = "the backup's digest in redis " + sf.String() + " score format (the manifest's is in 7.0 format)"
		rep.ExpectedDigest = wantDigest
	}
	rep.DigestMatch = d == wantDigest
	if rep.DigestMatch {
		rep.check(CheckDigest, true, "DEBUG DIGEST %s equals %s", d, what)
	} else {
		rep.check(CheckDigest, false, "DEBUG DIGEST %s, %s is %s: the loaded data differs from the snapshot", d, what, wantDigest)
	}
	return nil
}

// sample compares the sampled keys one by one with the backup's records:
// DEBUG DIGEST-VALUE against the record's digest, PEXPIRETIME against its
// expire time.
func (p *snapshotProof) sample(ctx context.Context, _ int) error {
	server := serverSide(p.srv, "the scratch server", "on the server")
	if p.noDebug {
		server = dumpSide(p.srv, p.sf, "the scratch server", "on the server")
	}
	return p.compareSample(ctx, p.s.keys, server, backupSide(), "equal to the backup")
}

// functions compares FUNCTION LIST library names with the census.
func (p *snapshotProof) functions(ctx context.Context) error {
	got, err := functionNames(ctx, p.srv)
	if err != nil {
		return fmt.Errorf("the scratch server: %w", err)
	}
	want := slices.Clone(p.snap.Census.Functions)
	slices.Sort(want)
	p.checkFunctions(got, want, "as in the census", "function libraries [%s] on the server, the census says [%s]")
	return nil
}
