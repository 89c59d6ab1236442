package drill

import (
	"container/heap"
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

	"github.com/redis/go-redis/v9"

	"redback/internal/catalog"
	"redback/internal/digest"
	"redback/internal/pack"
	"redback/internal/pitr"
	"redback/internal/rdb"
	"redback/internal/redisurl"
	"redback/internal/restore"
	"redback/internal/storage"
)

// pointDatabases is the number of databases of the scratch servers of a
// point-in-time drill: the log may SELECT any db, not only those of the
// base snapshot's census.
const pointDatabases = 256

// runPoint drills the point in time opts.At.
//
// When a log generation covers At (pitr.NewPlan succeeds), the point is
// restored twice. Phase "restore" writes it as a multi-part AOF dir with
// Plan.ToDir; phase "load" starts the first scratch server (a replica of
// 127.0.0.1:1, which keeps keys whose TTL passed) with --appendonly yes on
// that dir: the RTO ends when it serves. Phase "replay" restores the same
// point a second way, Plan.ToRedis into a second scratch server (a primary
// with active expiry off: redback's own replay, the path of `restore
// --to-redis`). The checks then require both servers to agree: key count
// per db, DEBUG DIGEST, a sample of keys chosen by hash (value digest and
// expire time) and the function libraries. There is no recorded digest for
// an arbitrary point: the proof is that redis-server's AOF loader and
// redback's replay, two independent consumers of the stored log, rebuild
// the same data.
//
// When At is at or after the newest durable point of the log, that point
// is drilled and the RPO is the time since it; otherwise the RPO is the
// age of the drilled point. When no generation covers At, the newest
// verified snapshot that ended at or before At is drilled (as without a
// log) and a note says why; when there is none either, the error names
// both. A gap in the log before At, or a damaged or missing object, fails
// the restore check (exit 3).
func runPoint(ctx context.Context, opts Options, start time.Time) (rep *Report, err error) {
	now := opts.Now
	at := opts.At
	rep = &Report{Repo: opts.Backend.Location(), Started: start.UTC(), Phases: map[string]float64{},
		Functions: []string{}, RTOObjectiveSeconds: opts.RTOObjective.Seconds(),
		Point: &Point{Kind: PointPITR, Requested: at}}
	defer func() {
		rep.TotalSeconds = now().Sub(start).Seconds()
		rep.OK = err == nil && len(rep.Checks) > 0 && len(rep.Failed()) == 0
	}()

	windows, err := pitr.Windows(ctx, opts.Backend)
	if err != nil {
		return rep, fmt.Errorf("read the log generations: %w", err)
	}
	newest := newestDurable(windows)
	atNewest := newest != nil && !at.Before(newest.To)
	plan, perr := pitr.NewPlan(ctx, opts.Backend, pitr.AtTime(at), pitr.Options{Identities: opts.Identities})
	if errors.Is(perr, pitr.ErrTargetNotCovered) && newest != nil && at.After(newest.To) {
		// After the newest durable point: drill that point, unless the
		// log past it is stored but cut off by a hole.
		for _, g := range newest.Gaps {
			if !g.Overlap {
				rep.check(CheckRestore, false, "%s is after the newest point the log restores (%s), and generation %s is missing the log between offsets %d and %d: what was shipped after offset %d cannot be restored",
					fmtTime(at), fmtTime(newest.To), newest.Generation, g.From, g.To, g.From)
				return rep, nil
			}
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s is after the newest durable point of the log (%s, generation %s, offset %d): that point is drilled",
			fmtTime(at), fmtTime(newest.To), newest.Generation, newest.ToOffset))
		target := pitr.AtTime(newest.To)
		target.Generation = newest.Generation
		plan, perr = pitr.NewPlan(ctx, opts.Backend, target, pitr.Options{Identities: opts.Identities})
	}
	switch {
	case perr == nil:
	case ctx.Err() != nil:
		return rep, ctx.Err()
	case errors.Is(perr, pitr.ErrTargetNotCovered):
		snap, serr := Select(ctx, opts.Backend, "", at)
		if serr != nil {
			return rep, fmt.Errorf("%w; and no snapshot to fall back on: %w", perr, serr)
		}
		opts.Snapshot = snap
		note := fmt.Sprintf("no log generation covers %s, so the newest verified snapshot that ended at or before it was drilled (%s); %v",
			fmtTime(at), snap.ID, perr)
		return runSnapshot(ctx, opts, start, []string{note})
	case errors.Is(perr, pitr.ErrGap), verificationFailed(perr), errors.Is(perr, storage.ErrNotExist):
		rep.check(CheckRestore, false, "%s", damage(perr))
		return rep, nil
	default:
		return rep, perr
	}
	rep.Notes = append(rep.Notes, plan.Notes...)
	base := plan.Base
	rep.Snapshot, rep.SnapshotTime, rep.Object = base.ID, base.EndTime, base.Object.Key
	rep.StoredBytes, rep.RawBytes = base.Object.StoredBytes, base.Object.RawBytes
	encrypted := base.Object.Encryption != ""
	for _, s := range plan.Segments {
		rep.StoredBytes += s.Object.StoredBytes
		rep.RawBytes += s.Object.RawBytes
		encrypted = encrypted || s.Object.Encryption != ""
	}
	rep.Point.Generation, rep.Point.Offset, rep.Point.Time = plan.Generation.ID, plan.Offset, plan.Time
	if atNewest {
		rep.RPOSeconds = max(0, start.Sub(newest.To).Seconds())
	} else {
		rep.RPOSeconds = max(0, start.Sub(plan.Time).Seconds())
		if newest != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the drilled point is older than the newest durable point (%s): the RPO reported is the age of the drilled point", fmtTime(newest.To)))
		}
	}

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
	if base.RDBVersion > reads {
		return rep, fmt.Errorf("%s is redis %s, which reads RDB version %d and older; base snapshot %s is RDB version %d: give --redis-server of a newer redis-server",
			bin, ver, reads, base.ID, base.RDBVersion)
	}
	if encrypted && len(opts.Identities) == 0 {
		return rep, fmt.Errorf("the point at %s is encrypted (base snapshot %s or its log): give --identity FILE (or $REDBACK_IDENTITY_FILE)", fmtTime(plan.Time), base.ID)
	}

	tmp, err := os.MkdirTemp(opts.ScratchDir, "redback-drill-")
	if err != nil {
		return rep, fmt.Errorf("create scratch dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	defer pinSnapshot(ctx, opts, base.ID, rep)()
	phase := func(name string) {
		if opts.OnPhase != nil {
			opts.OnPhase(name)
		}
	}

	// Phase "restore": the point as a multi-part AOF dir (base + log).
	phase(PhaseRestore)
	t0 := now()
	aofDir := filepath.Join(tmp, "aof")
	if err := os.Mkdir(aofDir, 0o700); err != nil {
		return rep, err
	}
	ro := restore.Options{Now: opts.Now}
	if opts.NewBar != nil {
		bar := opts.NewBar(PhaseRestore, base.Object.RawBytes)
		ro.Progress = func(bytes, keys int64) { bar.Add(bytes, keys) }
		defer bar.Done()
	}
	res, rerr := plan.ToDir(ctx, aofDir, ro)
	rep.Phases[PhaseRestore] = now().Sub(t0).Seconds()
	if rerr != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if verificationFailed(rerr) || errors.Is(rerr, storage.ErrNotExist) {
			rep.check(CheckRestore, false, "%s", damage(rerr))
			return rep, nil
		}
		return rep, rerr
	}
	if res.Base != nil {
		rep.KeysAlreadyExpired = res.Base.KeysExpired
	}
	rep.check(CheckRestore, true, "base snapshot %s and %d log segments of generation %s verified (size, sha256, %s, every record); %d commands up to offset %d (received %s) written as a multi-part AOF",
		base.ID, len(plan.Segments), plan.Generation.ID, sealing(base), res.Commands, plan.Offset, fmtTime(plan.Time))

	// Phase "load": redis-server loads the AOF dir.
	phase(PhaseLoad)
	t0 = now()
	srv, err := startScratchWith(bin, aofDir, scratchConfig{databases: pointDatabases, aof: true})
	if err != nil {
		return rep, err
	}
	defer srv.stop()
	if opts.onServer != nil {
		opts.onServer(srv.pid())
	}
	werr := srv.waitServing(ctx, nil)
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
	rep.check(CheckLoad, true, "redis %s loaded the AOF dir (base RDB and log) and serves on %s", ver, srv.addr())

	// Phase "replay": the same point through redback's replay.
	phase(PhaseReplay)
	t0 = now()
	srv2, rres, ok, err := replayPoint(ctx, opts, bin, filepath.Join(tmp, "replay"), plan, rep)
	defer srv2.stop()
	rep.Phases[PhaseReplay] = now().Sub(t0).Seconds()
	if err != nil || !ok {
		return rep, err
	}

	// Phase "checks": both servers must hold the same data. Nothing on
	// the replay server expires from here on (active expiry is off and no
	// key is read before the comparison), so a key with a TTL later than
	// cutoff is on both servers or the paths disagree.
	cutoff := now().UnixMilli()
	phase(PhaseChecks)
	t0 = now()
	c1, c2 := srv.client(0), srv2.client(0)
	defer c1.Close()
	defer c2.Close()
	dbs, err := comparePoint(ctx, srv, srv2, cutoff, rres, rep)
	if err != nil {
		return rep, err
	}
	n := opts.SampleKeys
	if n == 0 {
		n = DefaultSampleKeys
	}
	if n > 0 {
		if err := comparePointSample(ctx, srv, srv2, dbs, n, now, rep); err != nil {
			return rep, err
		}
	}
	if err := compareFunctions(ctx, c1, c2, rep); err != nil {
		return rep, err
	}
	rep.Phases[PhaseChecks] = now().Sub(t0).Seconds()
	rep.RTOMet = opts.RTOObjective <= 0 || rto <= opts.RTOObjective
	if opts.RTOObjective > 0 {
		rep.check(CheckRTO, rep.RTOMet, "%s from the start to a server serving the verified point; objective %s", rto.Round(time.Millisecond), opts.RTOObjective)
	}
	return rep, nil
}

// replayPoint starts the second scratch server (a primary, active expiry
// off) in dir and restores plan into it with Plan.ToRedis. ok is false
// when a check failed (recorded in rep). The server is returned to be
// stopped by the caller, even on error (stop is nil-safe).
func replayPoint(ctx context.Context, opts Options, bin, dir string, plan *pitr.Plan, rep *Report) (*scratch, *pitr.Result, bool, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, nil, false, err
	}
	srv, err := startScratchWith(bin, dir, scratchConfig{databases: pointDatabases, primary: true})
	if err != nil {
		return nil, nil, false, err
	}
	if opts.onServer != nil {
		opts.onServer(srv.pid())
	}
	if err := srv.waitServing(ctx, nil); err != nil {
		var le *LoadError
		if errors.As(err, &le) {
			rep.check(CheckReplay, false, "the replay scratch server did not start: %s", le.Detail)
			return srv, nil, false, nil
		}
		return srv, nil, false, fmt.Errorf("wait for the replay scratch server: %w", err)
	}
	c := srv.client(0)
	// A primary expires keys by itself; keys whose TTL passes during the
	// drill must stay for the comparison.
	err = c.Do(ctx, "DEBUG", "SET-ACTIVE-EXPIRE", "0").Err()
	c.Close()
	if err != nil {
		return srv, nil, false, fmt.Errorf("DEBUG SET-ACTIVE-EXPIRE on the replay scratch server: %w", err)
	}
	u, err := redisurl.Parse("redis://"+srv.addr(), redisurl.Options{})
	if err != nil {
		return srv, nil, false, err
	}
	res, err := plan.ToRedis(ctx, u, restore.Options{Now: opts.Now})
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return srv, res, false, ctx.Err()
		case srv.exited():
			rep.check(CheckReplay, false, "the replay scratch server exited during the replay: %s", srv.logTail(8))
			return srv, res, false, nil
		case res != nil && res.Errors > 0, verificationFailed(err), errors.Is(err, storage.ErrNotExist):
			rep.check(CheckReplay, false, "%v", err)
			return srv, res, false, nil
		}
		return srv, res, false, fmt.Errorf("replay into the scratch server: %w", err)
	}
	rep.check(CheckReplay, true, "base snapshot %s restored and %d commands (%s) replayed into a second scratch server on %s",
		plan.Base.ID, res.Commands, humanBytes(res.Bytes), srv.addr())
	return srv, res, true, nil
}

// newestDurable returns the restorable window that reaches furthest, or nil.
func newestDurable(ws []pitr.Window) *pitr.Window {
	var best *pitr.Window
	for i := range ws {
		w := &ws[i]
		if w.Problem != "" || w.To.IsZero() {
			continue
		}
		if best == nil || w.To.After(best.To) {
			best = w
		}
	}
	return best
}

// pinSnapshot protects snapshot id from retention while the drill runs and
// returns the function that removes the pin.
func pinSnapshot(ctx context.Context, opts Options, id string, rep *Report) func() {
	holder := opts.Holder
	if holder == "" {
		holder = catalog.NewHolderID()
	}
	pin, err := catalog.PutPin(ctx, opts.Backend, id, "drill", holder, 24*time.Hour)
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("could not pin the snapshot against retention (read-only repository?): %v", err))
		return func() {}
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = catalog.RemovePin(rctx, opts.Backend, pin.ID) // an expired pin is ignored by retention anyway
	}
}

// damage describes what is wrong with the repository, without the
// scratch file paths the error went through.
func damage(err error) string {
	var ie *pack.IntegrityError
	if errors.As(err, &ie) {
		return ie.Error() + ": the stored object is damaged"
	}
	var se *pitr.SegmentError
	if errors.As(err, &se) {
		return se.Error()
	}
	return err.Error()
}

func verificationFailed(err error) bool {
	var v interface{ VerificationFailed() bool }
	return errors.As(err, &v) && v.VerificationFailed()
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// keyspace reads the key count per db from INFO keyspace.
func keyspace(ctx context.Context, c *redis.Client) (map[int]int64, error) {
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return nil, err
	}
	got := map[int]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "db") {
			continue
		}
		db, err := strconv.Atoi(name[2:])
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "keys="); ok {
				got[db], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return got, nil
}

// comparePoint compares the key count per db and DEBUG DIGEST of the two
// servers and returns the dbs holding keys on either.
//
// When they differ, both servers SAVE and the two RDB files are compared
// leaving out the keys whose TTL ended at or before cutoff: the AOF server
// (a replica) keeps every key of the point, while the replay into a live
// primary drops keys whose TTL passed between the point and the drill.
// The rest, counted per db and digested as DEBUG DIGEST does, must be
// equal.
func comparePoint(ctx context.Context, s1, s2 *scratch, cutoff int64, rres *pitr.Result, rep *Report) ([]int, error) {
	c1, c2 := s1.client(0), s2.client(0)
	defer c1.Close()
	defer c2.Close()
	k1, err := keyspace(ctx, c1)
	if err != nil {
		return nil, fmt.Errorf("INFO keyspace on the AOF scratch server: %w", err)
	}
	k2, err := keyspace(ctx, c2)
	if err != nil {
		return nil, fmt.Errorf("INFO keyspace on the replay scratch server: %w", err)
	}
	dbs := dbsOf(k1, k2)
	rep.Keys, rep.ExpectedKeys = 0, 0
	var diffs []string
	for _, db := range dbs {
		rep.Keys += k1[db]
		rep.ExpectedKeys += k2[db]
		if k1[db] != k2[db] {
			diffs = append(diffs, fmt.Sprintf("db %d has %d keys after loading the AOF dir, %d after the replay", db, k1[db], k2[db]))
		}
	}
	d1, err := c1.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		return nil, fmt.Errorf("DEBUG DIGEST on the AOF scratch server: %w", err)
	}
	d2, err := c2.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		return nil, fmt.Errorf("DEBUG DIGEST on the replay scratch server: %w", err)
	}
	rep.Digest, rep.ExpectedDigest, rep.AOFDigest, rep.ReplayDigest = d1, d2, d1, d2
	if d1 == d2 && len(diffs) == 0 {
		rep.DigestMatch = true
		rep.check(CheckKeys, true, "%d keys in %d dbs on both servers", rep.Keys, len(dbs))
		rep.check(CheckDigest, true, "DEBUG DIGEST %s of the server that loaded the AOF dir equals that of the server the log was replayed into", d1)
		return dbs, nil
	}

	l1, err := saveLive(ctx, s1, c1, cutoff)
	if err != nil {
		return nil, fmt.Errorf("the AOF scratch server: %w", err)
	}
	l2, err := saveLive(ctx, s2, c2, cutoff)
	if err != nil {
		return nil, fmt.Errorf("the replay scratch server: %w", err)
	}
	cut := time.UnixMilli(cutoff)
	var ldiffs []string
	for _, db := range dbsOf(l1.keys, l2.keys) {
		if l1.keys[db] != l2.keys[db] {
			ldiffs = append(ldiffs, fmt.Sprintf("db %d has %d live keys after loading the AOF dir, %d after the replay", db, l1.keys[db], l2.keys[db]))
		}
	}
	expired := fmt.Sprintf("%d keys after loading the AOF dir and %d after the replay had a TTL that ended by %s", l1.expired, l2.expired, fmtTime(cut))
	if len(ldiffs) == 0 {
		rep.check(CheckKeys, true, "%d keys in %d dbs on both servers whose TTL had not ended by %s (%s: a replay into a live server drops those)",
			l1.total(), len(dbs), fmtTime(cut), expired)
	} else {
		rep.check(CheckKeys, false, "%s; %s", strings.Join(append(diffs, ldiffs...), "; "), expired)
	}
	rep.DigestMatch = l1.digest == l2.digest
	if rep.DigestMatch {
		rep.check(CheckDigest, true, "DEBUG DIGEST %s after loading the AOF dir, %s after the replay, differ only by keys whose TTL ended before the drill; without them both digest to %s (%s)",
			d1, d2, l1.digest, expired)
	} else {
		why := ""
		if rres != nil && rres.Base != nil && rres.Base.KeysExpired > 0 {
			why = fmt.Sprintf("; the replay's base restore dropped %d keys that had expired", rres.Base.KeysExpired)
		}
		rep.check(CheckDigest, false, "DEBUG DIGEST %s after loading the AOF dir, %s after the replay; without keys whose TTL ended by %s still %s and %s: the two restore paths disagree (%s%s)",
			d1, d2, fmtTime(cut), l1.digest, l2.digest, expired, why)
	}
	return dbs, nil
}

func dbsOf(a, b map[int]int64) []int {
	var dbs []int
	for db := range a {
		dbs = append(dbs, db)
	}
	for db := range b {
		if _, ok := a[db]; !ok {
			dbs = append(dbs, db)
		}
	}
	slices.Sort(dbs)
	return dbs
}

// live is a server's data without the keys whose TTL ended.
type live struct {
	digest  string
	keys    map[int]int64 // per db
	expired int64
}

func (l *live) total() int64 {
	var n int64
	for _, k := range l.keys {
		n += k
	}
	return n
}

// saveLive runs SAVE on s and digests its dump.rdb as DEBUG DIGEST would,
// leaving out keys whose TTL ended at or before cutoff (unix ms).
func saveLive(ctx context.Context, s *scratch, c *redis.Client, cutoff int64) (*live, error) {
	if err := c.Do(ctx, "SAVE").Err(); err != nil {
		return nil, fmt.Errorf("SAVE: %w", err)
	}
	path := filepath.Join(s.dir, "dump.rdb")
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd, err := rdb.NewReader(f, rdb.Options{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	d := digest.New(digest.Options{})
	l := &live{keys: map[int]int64{}}
	for i := 0; ; i++ {
		if i&4095 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if rec.Kind != rdb.RecordKey {
			continue
		}
		if rec.Expire >= 0 && rec.Expire <= cutoff {
			l.expired++
			continue
		}
		l.keys[rec.DB]++
		if err := d.Add(rec); err != nil {
			return nil, err
		}
	}
	l.digest = d.Sum()
	return l, nil
}

// scanSample picks the n keys with the smallest keyHash among the keys
// SCAN returns in dbs (a replica's SCAN leaves out keys whose TTL passed;
// DEBUG DIGEST covers those).
func scanSample(ctx context.Context, s *scratch, dbs []int, n int) ([]sampleKey, error) {
	h := &keyHeap{}
	in := map[string]bool{}
	for _, db := range dbs {
		c := s.client(db)
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, "", 1000).Result()
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("SCAN db %d on the AOF scratch server: %w", db, err)
			}
			for _, k := range keys {
				id := strconv.Itoa(db) + ":" + k
				kh := keyHash(db, []byte(k))
				if in[id] || h.Len() >= n && kh >= (*h)[0].h {
					continue
				}
				in[id] = true
				sk := sampleKey{db: db, key: k, h: kh}
				if h.Len() < n {
					heap.Push(h, sk)
				} else {
					delete(in, strconv.Itoa((*h)[0].db)+":"+(*h)[0].key)
					(*h)[0] = sk
					heap.Fix(h, 0)
				}
			}
			cursor = next
			if cursor == 0 {
				break
			}
		}
		c.Close()
	}
	return *h, nil
}

// keyState is what one server says about sampled keys of one db.
type keyState struct {
	digests       []string
	expires       []int64 // nil without PEXPIRETIME
	noPexpiretime bool
}

func readKeys(ctx context.Context, s *scratch, db int, keys []sampleKey) (*keyState, error) {
	c := s.client(db)
	defer c.Close()
	args := []any{"DEBUG", "DIGEST-VALUE"}
	for _, k := range keys {
		args = append(args, k.key)
	}
	vals, err := c.Do(ctx, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("DEBUG DIGEST-VALUE: %w", err)
	}
	st := &keyState{digests: vals}
	cmds := make([]*redis.Cmd, len(keys))
	pipe := c.Pipeline()
	for i, k := range keys {
		cmds[i] = pipe.Do(ctx, "PEXPIRETIME", k.key)
	}
	_, perr := pipe.Exec(ctx)
	switch {
	case perr != nil && strings.Contains(perr.Error(), "unknown command"):
		st.noPexpiretime = true
		return st, nil
	case perr != nil && !isRedisError(perr):
		return nil, fmt.Errorf("PEXPIRETIME: %w", perr)
	}
	st.expires = make([]int64, len(keys))
	for i := range cmds {
		e, err := cmds[i].Int64()
		if err != nil {
			e = -3 // an error reply: never equal
		}
		st.expires[i] = e
	}
	return st, nil
}

// comparePointSample compares a sample of keys chosen by hash on the two
// servers: DEBUG DIGEST-VALUE and PEXPIRETIME must be equal.
func comparePointSample(ctx context.Context, s1, s2 *scratch, dbs []int, n int, now func() time.Time, rep *Report) error {
	keys, err := scanSample(ctx, s1, dbs, n)
	if err != nil {
		return err
	}
	byDB := map[int][]sampleKey{}
	for _, k := range keys {
		byDB[k.db] = append(byDB[k.db], k)
	}
	mismatch := func(format string, args ...any) {
		rep.SampleMismatches++
		if len(rep.Mismatches) < maxListedMismatches {
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf(format, args...))
		}
	}
	noPexpiretime := false
	for _, db := range dbs {
		ks := byDB[db]
		if len(ks) == 0 {
			continue
		}
		slices.SortFunc(ks, func(a, b sampleKey) int { return strings.Compare(a.key, b.key) })
		a, err := readKeys(ctx, s1, db, ks)
		if err != nil {
			return fmt.Errorf("the AOF scratch server: %w", err)
		}
		b, err := readKeys(ctx, s2, db, ks)
		if err != nil {
			return fmt.Errorf("the replay scratch server: %w", err)
		}
		after := now().UnixMilli()
		noPexpiretime = noPexpiretime || a.noPexpiretime || b.noPexpiretime
		for i, k := range ks {
			rep.SampleChecked++
			da, db2 := nth(a.digests, i), nth(b.digests, i)
			expiredMeanwhile := a.expires != nil && (a.expires[i] == -2 || a.expires[i] >= 0 && a.expires[i] <= after)
			switch {
			case da != db2 && db2 == zeroDigest && expiredMeanwhile:
				// Its TTL ended during the drill: the replay server (a
				// primary) drops it when read.
				continue
			case da != db2 && db2 == zeroDigest:
				mismatch("db %d key %s is missing after the replay", db, quote(k.key))
				continue
			case da != db2:
				mismatch("db %d key %s: value digest %s after loading the AOF dir, %s after the replay", db, quote(k.key), da, db2)
				continue
			}
			if a.expires == nil || b.expires == nil {
				continue
			}
			ea, eb := a.expires[i], b.expires[i]
			switch {
			case ea == eb:
			case ea == -2 && eb >= 0 && eb <= after, eb == -2 && ea >= 0 && ea <= after:
				// Expired during the drill: a replica hides it from
				// PEXPIRETIME, the other server may not yet.
			default:
				mismatch("db %d key %s: expire time %s after loading the AOF dir, %s after the replay", db, quote(k.key), fmtExpire(ea), fmtExpire(eb))
			}
		}
	}
	what := "value digest and expire time"
	if noPexpiretime {
		what = "value digest (this redis-server has no PEXPIRETIME; expire times not compared)"
		rep.Notes = append(rep.Notes, "expire times of the sample were not compared: redis "+rep.RedisVersion+" has no PEXPIRETIME")
	}
	if rep.SampleMismatches == 0 {
		rep.check(CheckSample, true, "%d keys chosen by hash: %s equal on both servers", rep.SampleChecked, what)
	} else {
		rep.check(CheckSample, false, "%d of %d keys chosen by hash differ: %s", rep.SampleMismatches, rep.SampleChecked, strings.Join(rep.Mismatches, "; "))
	}
	return nil
}

func nth(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}

// functionNames lists the function libraries of a server, sorted.
func functionNames(ctx context.Context, c *redis.Client) ([]string, error) {
	libs, err := c.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	if err != nil {
		if strings.Contains(err.Error(), "unknown command") {
			return []string{}, nil
		}
		return nil, err
	}
	got := []string{}
	for _, l := range libs {
		got = append(got, l.Name)
	}
	slices.Sort(got)
	return got, nil
}

// compareFunctions compares the function libraries of the two servers.
func compareFunctions(ctx context.Context, c1, c2 *redis.Client, rep *Report) error {
	f1, err := functionNames(ctx, c1)
	if err != nil {
		return fmt.Errorf("FUNCTION LIST on the AOF scratch server: %w", err)
	}
	f2, err := functionNames(ctx, c2)
	if err != nil {
		return fmt.Errorf("FUNCTION LIST on the replay scratch server: %w", err)
	}
	rep.Functions = f1
	rep.FunctionsOK = slices.Equal(f1, f2)
	if rep.FunctionsOK {
		rep.check(CheckFunctions, true, "function libraries [%s] on both servers", strings.Join(f1, " "))
	} else {
		rep.check(CheckFunctions, false, "function libraries [%s] after loading the AOF dir, [%s] after the replay", strings.Join(f1, " "), strings.Join(f2, " "))
	}
	return nil
}
