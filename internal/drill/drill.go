package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/redis/go-redis/v9"

	"redback/internal/catalog"
	"redback/internal/digest"
	"redback/internal/pack"
	"redback/internal/progress"
	"redback/internal/restore"
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
	Started      time.Time `json:"started"`
	// Point is what was restored: a point in time of a log generation
	// ("pitr") or a snapshot ("snapshot").
	Point *Point `json:"point,omitempty"`
	// AOFDigest and ReplayDigest are, for a point in time, DEBUG DIGEST of
	// the server that loaded the restored AOF dir and of the server the
	// log was replayed into; DigestMatch says they are equal.
	AOFDigest           string             `json:"aof_digest,omitempty"`
	ReplayDigest        string             `json:"replay_digest,omitempty"`
	Keys                int64              `json:"keys"`
	ExpectedKeys        int64              `json:"expected_keys"`
	KeysAlreadyExpired  int64              `json:"keys_already_expired"`
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
// runPoint.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	start := opts.Now()
	if opts.Backend == nil || opts.Snapshot == nil && opts.At.IsZero() {
		return nil, errors.New("drill: no snapshot or repository given")
	}
	if opts.Snapshot == nil {
		return runPoint(ctx, opts, start)
	}
	return runSnapshot(ctx, opts, start, nil)
}

// runSnapshot drills opts.Snapshot; notes start the report's notes.
func runSnapshot(ctx context.Context, opts Options, start time.Time, notes []string) (rep *Report, err error) {
	now := opts.Now
	snap := opts.Snapshot
	rep = &Report{Notes: notes,
		Point:    &Point{Kind: PointSnapshot, Generation: snap.Generation, Offset: snap.Source.Offset, Time: snap.EndTime, Requested: opts.At},
		Snapshot: snap.ID, SnapshotTime: snap.EndTime, Repo: opts.Backend.Location(), Object: snap.Object.Key,
		StoredBytes: snap.Object.StoredBytes, RawBytes: snap.Object.RawBytes, Started: start.UTC(),
		ExpectedKeys: snap.Census.Keys, ExpectedDigest: snap.Digest, Phases: map[string]float64{},
		Functions: []string{}, RTOObjectiveSeconds: opts.RTOObjective.Seconds(),
		RPOSeconds: max(0, start.Sub(snap.EndTime).Seconds()),
	}
	defer func() {
		rep.TotalSeconds = now().Sub(start).Seconds()
		rep.OK = err == nil && len(rep.Checks) > 0 && len(rep.Failed()) == 0
	}()

	bin, err := findServer(opts.RedisServer)
	if err != nil {
		return rep, err
	}
	rep.RedisServer = bin
	ver, err := serverVersion(ctx, bin)
	if err != nil {
		return rep, err
	}
	rep.RedisVersion = ver
	reads, err := restore.RDBVersionFor(ver)
	if err != nil {
		return rep, err
	}
	if snap.RDBVersion > reads {
		return rep, fmt.Errorf("%s is redis %s, which reads RDB version %d and older; snapshot %s is RDB version %d: give --redis-server of a newer redis-server",
			bin, ver, reads, snap.ID, snap.RDBVersion)
	}
	if snap.Object.Encryption != "" && len(opts.Identities) == 0 {
		return rep, fmt.Errorf("snapshot %s is encrypted: give --identity FILE (or $REDBACK_IDENTITY_FILE)", snap.ID)
	}

	tmp, err := os.MkdirTemp(opts.ScratchDir, "redback-drill-")
	if err != nil {
		return rep, fmt.Errorf("create scratch dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	holder := opts.Holder
	if holder == "" {
		holder = catalog.NewHolderID()
	}
	if pin, perr := catalog.PutPin(ctx, opts.Backend, snap.ID, "drill", holder, 24*time.Hour); perr != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("could not pin the snapshot against retention (read-only repository?): %v", perr))
	} else {
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = catalog.RemovePin(rctx, opts.Backend, pin.ID) // an expired pin is ignored by retention anyway
		}()
	}

	phase := func(name string) {
		if opts.OnPhase != nil {
			opts.OnPhase(name)
		}
	}

	// Phase 1: fetch the stored object.
	phase(PhaseFetch)
	t0 := now()
	objPath := filepath.Join(tmp, "object")
	ferr := fetch(ctx, opts, snap, objPath)
	rep.Phases[PhaseFetch] = now().Sub(t0).Seconds()
	if ferr != nil {
		if errors.Is(ferr, storage.ErrNotExist) {
			rep.check(CheckRestore, false, "data object %s is missing from the repository (the manifest of snapshot %s refers to it)", snap.Object.Key, snap.ID)
			return rep, nil
		}
		return rep, ferr
	}

	// Phase 2: decrypt, decompress, verify, write dump.rdb.
	phase(PhaseRestore)
	t0 = now()
	dataDir := filepath.Join(tmp, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		return rep, err
	}
	res, rerr := restoreDir(ctx, opts, snap, objPath, dataDir)
	rep.Phases[PhaseRestore] = now().Sub(t0).Seconds()
	_ = os.Remove(objPath) // the dump.rdb is what counts now; free the space
	if rerr != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		var v interface{ VerificationFailed() bool }
		if errors.As(rerr, &v) && v.VerificationFailed() {
			rep.check(CheckRestore, false, "%v", rerr)
			return rep, nil
		}
		return rep, rerr
	}
	rep.KeysAlreadyExpired = res.KeysExpired
	rep.check(CheckRestore, true, "%s verified (size, sha256, %s, RDB structure and CRC-64); %s of RDB written",
		snap.Object.Key, sealing(snap), humanBytes(res.Bytes))

	// Phase 3: start the scratch server and wait until it serves.
	phase(PhaseLoad)
	t0 = now()
	maxDB := 0
	for _, d := range snap.Census.DBs {
		maxDB = max(maxDB, d.DB)
	}
	srv, err := startScratch(bin, dataDir, maxDB+1)
	if err != nil {
		return rep, err
	}
	defer srv.stop()
	if opts.onServer != nil {
		opts.onServer(srv.pid())
	}
	var (
		loadBar *progress.Bar // nil-safe
		loaded  func(int64)
	)
	if opts.NewBar != nil {
		loadBar = opts.NewBar(PhaseLoad, snap.Object.RawBytes)
		var last int64
		loaded = func(n int64) {
			if n > last {
				loadBar.Add(n-last, 0)
				last = n
			}
		}
	}
	werr := srv.waitServing(ctx, loaded)
	loadBar.Done()
	rep.Phases[PhaseLoad] = now().Sub(t0).Seconds()
	if werr != nil {
		var le *LoadError
		if errors.As(werr, &le) {
			rep.check(CheckLoad, false, "%v", werr)
			return rep, nil
		}
		return rep, fmt.Errorf("wait for the scratch server to load: %w", werr)
	}
	rto := now().Sub(start)
	rep.RTOSeconds = rto.Seconds()
	rep.check(CheckLoad, true, "redis %s loaded the RDB and serves on %s", ver, srv.addr())

	// Phase 4: prove it. The sample is read from the restored file while
	// the server computes DEBUG DIGEST (it blocks the server anyway, on one
	// core; the sampler parses on another).
	phase(PhaseChecks)
	t0 = now()
	sf := digest.Score70
	if v, _ := restore.RDBVersionFor(ver); v >= 11 {
		sf = digest.Score72
	}
	fullDigest := sf != digest.Score70 && snap.Census.Types["zset"] > 0
	n := opts.SampleKeys
	if n == 0 {
		n = DefaultSampleKeys
	}
	sctx, cancelSample := context.WithCancel(ctx)
	type sampleResult struct {
		s   *sampled
		err error
	}
	sampleDone := make(chan sampleResult, 1)
	go func() {
		s, err := sampleFile(sctx, filepath.Join(dataDir, "dump.rdb"), n, sf, fullDigest)
		sampleDone <- sampleResult{s, err}
	}()
	defer func() { cancelSample(); <-sampleDone }()
	sampleRes := func() sampleResult {
		r := <-sampleDone
		sampleDone <- r
		return r
	}

	c := srv.client(0)
	defer c.Close()
	if err := checkKeys(ctx, c, snap, rep); err != nil {
		return rep, err
	}
	serverDigest, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		return rep, fmt.Errorf("DEBUG DIGEST on the scratch server: %w", err)
	}
	sr := sampleRes()
	if sr.err != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		return rep, fmt.Errorf("read the sample from the restored file: %w", sr.err)
	}
	checkDigest(serverDigest, snap, sr.s, sf, rep)
	if n > 0 {
		if err := checkSample(ctx, srv, sr.s, now, rep); err != nil {
			return rep, err
		}
	}
	if err := checkFunctions(ctx, c, snap, rep); err != nil {
		return rep, err
	}
	rep.Phases[PhaseChecks] = now().Sub(t0).Seconds()
	rep.RTOMet = opts.RTOObjective <= 0 || rto <= opts.RTOObjective
	if opts.RTOObjective > 0 {
		rep.check(CheckRTO, rep.RTOMet, "%s from the start to a server serving the verified data; objective %s", rto.Round(time.Millisecond), opts.RTOObjective)
	}
	return rep, nil
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
		Name: "snapshot " + snap.ID,
		Size: snap.Object.RawBytes,
		DBs:  dbs,
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
			ra := newReadAhead(ur) // unseal on one core, parse and write on another
			return readCloser{Reader: ra, close: func() error { ra.Close(); ur.Close(); return f.Close() }}, nil
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

// checkKeys compares the key count per db with the census.
func checkKeys(ctx context.Context, c *redis.Client, snap *catalog.Snapshot, rep *Report) error {
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return fmt.Errorf("INFO keyspace on the scratch server: %w", err)
	}
	got := map[int]int64{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "db") {
			continue
		}
		db, err := strconv.Atoi(name[2:])
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "keys="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				got[db] = n
				rep.Keys += n
			}
		}
	}
	var diffs []string
	want := map[int]int64{}
	for _, d := range snap.Census.DBs {
		want[d.DB] = d.Keys
		if got[d.DB] != d.Keys {
			diffs = append(diffs, fmt.Sprintf("db %d has %d keys, the snapshot %d", d.DB, got[d.DB], d.Keys))
		}
	}
	for db, n := range got {
		if _, ok := want[db]; !ok && n > 0 {
			diffs = append(diffs, fmt.Sprintf("db %d has %d keys, the snapshot none", db, n))
		}
	}
	slices.Sort(diffs)
	if rep.Keys == snap.Census.Keys && len(diffs) == 0 {
		rep.check(CheckKeys, true, "%d keys in %d dbs, as in the manifest's census", rep.Keys, len(snap.Census.DBs))
	} else {
		rep.check(CheckKeys, false, "%d keys on the server, the manifest says %d; %s", rep.Keys, snap.Census.Keys, strings.Join(diffs, "; "))
	}
	return nil
}

// checkDigest compares DEBUG DIGEST with the manifest's digest (or, for a
// 7.2+ server holding sorted sets, with the digest recomputed from the
// backup in that server's score format).
func checkDigest(d string, snap *catalog.Snapshot, s *sampled, sf digest.ScoreFormat, rep *Report) {
	rep.Digest = d
	want, what := snap.Digest, "the manifest's digest"
	if s.digest != "" {
		want = s.digest
		what = "the backup's digest in redis " + sf.String() + " score format (the manifest's is in 7.0 format)"
		rep.ExpectedDigest = want
	}
	rep.DigestMatch = d == want
	if rep.DigestMatch {
		rep.check(CheckDigest, true, "DEBUG DIGEST %s equals %s", d, what)
	} else {
		rep.check(CheckDigest, false, "DEBUG DIGEST %s, %s is %s: the loaded data differs from the snapshot", d, what, want)
	}
}

// maxListedMismatches bounds Report.Mismatches.
const maxListedMismatches = 20

// checkSample compares the sampled keys one by one: DEBUG DIGEST-VALUE
// against the backup record's digest, and PEXPIRETIME against its expire.
func checkSample(ctx context.Context, srv *scratch, s *sampled, now func() time.Time, rep *Report) error {
	byDB := map[int][]sampleKey{}
	for _, k := range s.keys {
		byDB[k.db] = append(byDB[k.db], k)
	}
	dbs := make([]int, 0, len(byDB))
	for db := range byDB {
		dbs = append(dbs, db)
	}
	slices.Sort(dbs)
	mismatch := func(format string, args ...any) {
		rep.SampleMismatches++
		if len(rep.Mismatches) < maxListedMismatches {
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf(format, args...))
		}
	}
	noPexpiretime := false
	for _, db := range dbs {
		keys := byDB[db]
		slices.SortFunc(keys, func(a, b sampleKey) int { return strings.Compare(a.key, b.key) })
		c := srv.client(db)
		args := []any{"DEBUG", "DIGEST-VALUE"}
		for _, k := range keys {
			args = append(args, k.key)
		}
		vals, err := c.Do(ctx, args...).StringSlice()
		if err != nil {
			c.Close()
			return fmt.Errorf("DEBUG DIGEST-VALUE on the scratch server: %w", err)
		}
		exps := make([]*redis.Cmd, len(keys))
		pipe := c.Pipeline()
		for i, k := range keys {
			exps[i] = pipe.Do(ctx, "PEXPIRETIME", k.key)
		}
		_, perr := pipe.Exec(ctx)
		after := now().UnixMilli()
		c.Close()
		if perr != nil && strings.Contains(perr.Error(), "unknown command") {
			noPexpiretime = true
		} else if perr != nil && !isRedisError(perr) {
			return fmt.Errorf("PEXPIRETIME on the scratch server: %w", perr)
		}
		for i, k := range keys {
			rep.SampleChecked++
			if i >= len(vals) || vals[i] != k.digest {
				got := "(none)"
				if i < len(vals) {
					got = vals[i]
				}
				if got == zeroDigest {
					mismatch("db %d key %s is missing on the server", db, quote(k.key))
				} else {
					mismatch("db %d key %s: value digest %s on the server, %s in the backup", db, quote(k.key), got, k.digest)
				}
				continue
			}
			if noPexpiretime {
				continue
			}
			e, err := exps[i].Int64()
			if err != nil {
				mismatch("db %d key %s: PEXPIRETIME: %v", db, quote(k.key), err)
				continue
			}
			switch {
			case e == k.expire:
			case e == -2 && k.expire >= 0 && k.expire <= after:
				// Expired meanwhile: a replica hides it from PEXPIRETIME but
				// keeps it (its DIGEST-VALUE matched, expire flag included).
			default:
				mismatch("db %d key %s: expire time %s on the server, %s in the backup", db, quote(k.key), fmtExpire(e), fmtExpire(k.expire))
			}
		}
	}
	what := "value digest and expire time"
	if noPexpiretime {
		what = "value digest (this redis-server has no PEXPIRETIME; expire times not compared)"
		rep.Notes = append(rep.Notes, "expire times of the sample were not compared: redis "+rep.RedisVersion+" has no PEXPIRETIME")
	}
	if rep.SampleMismatches == 0 {
		rep.check(CheckSample, true, "%d keys chosen by hash: %s equal to the backup", rep.SampleChecked, what)
	} else {
		rep.check(CheckSample, false, "%d of %d keys chosen by hash differ: %s", rep.SampleMismatches, rep.SampleChecked, strings.Join(rep.Mismatches, "; "))
	}
	return nil
}

const zeroDigest = "0000000000000000000000000000000000000000"

func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

func fmtExpire(ms int64) string {
	switch ms {
	case -1:
		return "none"
	case -2:
		return "(key gone)"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// quote prints a key for people, shortened.
func quote(k string) string {
	if len(k) > 80 {
		return strconv.Quote(k[:80]) + "..."
	}
	return strconv.Quote(k)
}

// checkFunctions compares FUNCTION LIST library names with the census.
func checkFunctions(ctx context.Context, c *redis.Client, snap *catalog.Snapshot, rep *Report) error {
	want := slices.Clone(snap.Census.Functions)
	slices.Sort(want)
	libs, err := c.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	if err != nil {
		if strings.Contains(err.Error(), "unknown command") && len(want) == 0 {
			rep.FunctionsOK = true
			return nil
		}
		return fmt.Errorf("FUNCTION LIST on the scratch server: %w", err)
	}
	got := []string{}
	for _, l := range libs {
		got = append(got, l.Name)
	}
	slices.Sort(got)
	rep.Functions = got
	rep.FunctionsOK = slices.Equal(got, want) || len(got) == 0 && len(want) == 0
	if rep.FunctionsOK {
		rep.check(CheckFunctions, true, "function libraries [%s] as in the census", strings.Join(got, " "))
	} else {
		rep.check(CheckFunctions, false, "function libraries [%s] on the server, the census says [%s]", strings.Join(got, " "), strings.Join(want, " "))
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
