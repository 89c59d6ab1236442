package drill

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/catalog"
	"redback/internal/digest"
	"redback/internal/keysample"
	"redback/internal/pack"
	"redback/internal/progress"
	"redback/internal/scratch"
	"redback/internal/storage"
)

// drillRun is one drill under way: the steps both kinds of drill (a snapshot,
// a point in time) take, in the same order, each written once here.
type drillRun struct {
	ctx   context.Context
	opts  Options
	start time.Time
	rep   *Report
	bin   string        // the redis-server binary
	ver   string        // its version
	rto   time.Duration // start to the loaded server serving
}

// phase tells opts.OnPhase that phase name starts and returns the
// function that records its time in the report.
func (r *drillRun) phase(name string) (done func()) {
	if r.opts.OnPhase != nil {
		r.opts.OnPhase(name)
	}
	t0 := r.opts.Now()
	return func() { r.rep.Phases[name] = r.opts.Now().Sub(t0).Seconds() }
}

// setUp readies what the restore needs: the redis-server binary and its
// version, which must read the RDB version of base (what names it); an
// identity when the data is encrypted (locked is then the error without
// one, nil otherwise); the scratch server's own dir in opts.ScratchDir;
// and a pin that protects base from retention while the drill runs. The
// caller defers cleanup, which closes the server and removes the pin.
func (r *drillRun) setUp(base *catalog.Snapshot, what string, locked error) (srv *scratch.Server, cleanup func(), err error) {
	need := scratch.NeedOf(base.RDBVersion, base.Source.RedisVersion, base.Source.ValkeyVersion)
	b, err := scratch.Choose(r.ctx, r.opts.RedisServer, need)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	r.bin, r.rep.RedisServer = b.Path, b.Path
	r.ver, r.rep.RedisVersion = b.Version, b.Version
	r.rep.ServerFamily = b.Family
	if locked != nil && len(r.opts.Identities) == 0 {
		return nil, nil, locked
	}
	if srv, err = r.newServer(); err != nil {
		return nil, nil, err
	}
	unpin := r.pin(base.ID)
	return srv, func() { unpin(); srv.Close() }, nil
}

// newServer makes a scratch server's own dir in opts.ScratchDir; the
// caller closes the server.
func (r *drillRun) newServer() (*scratch.Server, error) {
	s, err := scratch.New(r.opts.ScratchDir, "redback-drill-")
	if err != nil {
		return nil, fmt.Errorf("create scratch dir: %w", err)
	}
	return s, nil
}

// pin protects snapshot id from retention and returns the function that
// removes the pin.
func (r *drillRun) pin(id string) (unpin func()) {
	holder := r.opts.Holder
	if holder == "" {
		holder = catalog.NewHolderID()
	}
	pin, err := catalog.PutPin(r.ctx, r.opts.Backend, id, "drill", holder, 24*time.Hour)
	if err != nil {
		r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("could not pin the snapshot against retention (read-only repository?): %v", err))
		return func() {}
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), time.Minute)
		defer cancel()
		_ = catalog.RemovePin(rctx, r.opts.Backend, pin.ID) // an expired pin is ignored by retention anyway
	}
}

// restoreFailed sorts the error of the restore: a damaged or missing
// stored object fails the restore check (detail says why) and returns
// nil; anything else stops the drill.
func (r *drillRun) restoreFailed(err error, detail string) error {
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	if pack.VerificationFailed(err) || errors.Is(err, storage.ErrNotExist) {
		r.rep.check(CheckRestore, false, "%s", detail)
		return nil
	}
	return err
}

// serve starts srv as o says with the drill's redis-server, tells
// opts.onServer its pid and waits until it serves. A server that exits
// while loading is a *LoadError; name says which server other errors are
// about.
func (r *drillRun) serve(srv *scratch.Server, o scratch.Options, name string, progress func(int64)) error {
	o.Bin = r.bin
	if err := srv.Start(r.ctx, o); err != nil {
		return err
	}
	if r.opts.onServer != nil {
		r.opts.onServer(srv.Pid())
	}
	err := srv.Wait(r.ctx, progress)
	switch {
	case errors.Is(err, scratch.ErrExited):
		return &LoadError{Detail: srv.LogTail(8)}
	case err != nil:
		return fmt.Errorf("wait for the %s to load: %w", name, err)
	}
	return nil
}

// load is the phase "load": srv loads what the restore wrote (what, for
// the check) and the RTO ends when it serves. size, when > 0, is the bytes
// it loads, for a progress bar. ok is false when the server did not load
// (the load check failed).
func (r *drillRun) load(srv *scratch.Server, o scratch.Options, what string, size int64) (ok bool, err error) {
	done := r.phase(PhaseLoad)
	var (
		bar    *progress.Bar // nil-safe
		loaded func(int64)
	)
	if size > 0 && r.opts.NewBar != nil {
		bar = r.opts.NewBar(PhaseLoad, size)
		var last int64
		loaded = func(n int64) {
			if n > last {
				bar.Add(n-last, 0)
				last = n
			}
		}
	}
	err = r.serve(srv, o, "scratch server", loaded)
	bar.Done()
	done()
	if err != nil {
		var le *LoadError
		if errors.As(err, &le) {
			r.rep.check(CheckLoad, false, "%v", err)
			return false, nil
		}
		return false, err
	}
	r.rto = r.opts.Now().Sub(r.start)
	r.rep.RTOSeconds = r.rto.Seconds()
	r.rep.check(CheckLoad, true, "%s %s loaded %s and serves on %s", family(r.rep.ServerFamily), r.ver, what, srv.Addr())
	return true, nil
}

// proof is what the loaded server is compared with: the snapshot's
// manifest and restored file, or a second server that got the same point
// another way.
type proof interface {
	// keys records the keys and digest checks; n is the sample size.
	keys(ctx context.Context, n int) error
	// sample records the sample check of n keys.
	sample(ctx context.Context, n int) error
	// functions records the functions check.
	functions(ctx context.Context) error
}

// prove is the phase "checks": keys, digest, the sample and the function
// libraries as p says, then the RTO against the objective; what names the
// data that was served.
func (r *drillRun) prove(p proof, what string) error {
	done := r.phase(PhaseChecks)
	n := r.opts.SampleKeys
	if n == 0 {
		n = DefaultSampleKeys
	}
	if err := p.keys(r.ctx, n); err != nil {
		return err
	}
	if n > 0 {
		if err := p.sample(r.ctx, n); err != nil {
			return err
		}
	}
	if err := p.functions(r.ctx); err != nil {
		return err
	}
	done()
	r.rep.RTOMet = r.opts.RTOObjective <= 0 || r.rto <= r.opts.RTOObjective
	if r.opts.RTOObjective > 0 {
		r.rep.check(CheckRTO, r.rep.RTOMet, "%s from the start to a server serving %s; objective %s", r.rto.Round(time.Millisecond), what, r.opts.RTOObjective)
	}
	return nil
}

// keyspace reads the key count per db of srv from INFO keyspace.
func keyspace(ctx context.Context, srv *scratch.Server) (map[int]int64, error) {
	c := srv.Client(0)
	defer c.Close()
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return nil, fmt.Errorf("INFO keyspace: %w", err)
	}
	return keysample.ParseKeyspace(info), nil
}

// debugDigest returns DEBUG DIGEST of srv.
func debugDigest(ctx context.Context, srv *scratch.Server) (string, error) {
	c := srv.Client(0)
	defer c.Close()
	d, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		return "", fmt.Errorf("DEBUG DIGEST: %w", err)
	}
	return d, nil
}

// dbsOf returns the dbs of a and b, sorted.
func dbsOf(a, b map[int]int64) []int {
	all := map[int]int64{}
	maps.Copy(all, a)
	maps.Copy(all, b)
	return slices.Sorted(maps.Keys(all))
}

// keyDiffs describes, db by db, where the key counts a and b differ.
func keyDiffs(a, b map[int]int64, describe func(db int) string) []string {
	var diffs []string
	for _, db := range dbsOf(a, b) {
		if a[db] != b[db] {
			diffs = append(diffs, describe(db))
		}
	}
	return diffs
}

// keyState is what one side says about the sampled keys of one db, in
// their order.
type keyState struct {
	digests []string // DEBUG DIGEST-VALUE
	expires []int64  // PEXPIRETIME; nil when the server has none
	errs    []error  // the PEXPIRETIME error reply of a key, if any
}

// side is one of the two things a sample is compared between.
type side struct {
	// where places a value in a mismatch: "on the server", "in the
	// backup", "after the replay".
	where string
	read  func(ctx context.Context, db int, keys []sampleKey) (*keyState, error)
}

// serverSide reads sampled keys from srv; name says which server errors
// are about.
func serverSide(srv *scratch.Server, name, where string) side {
	return side{where: where, read: func(ctx context.Context, db int, keys []sampleKey) (*keyState, error) {
		st, err := readKeys(ctx, srv, db, keys)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return st, nil
	}}
}

// dumpSide reads sampled keys from srv with DUMP, PTTL and PEXPIRETIME,
// their value digests computed here in score format sf: for a server that
// refuses DEBUG.
func dumpSide(srv *scratch.Server, sf digest.ScoreFormat, name, where string) side {
	vd := keysample.New(0, sf)
	return side{where: where, read: func(ctx context.Context, db int, keys []sampleKey) (*keyState, error) {
		c := srv.Client(db)
		defer c.Close()
		pipe := c.Pipeline()
		dumps := make([]*redis.StringCmd, len(keys))
		ttls := make([]*redis.DurationCmd, len(keys))
		exps := make([]*redis.Cmd, len(keys))
		for i, k := range keys {
			dumps[i] = pipe.Dump(ctx, k.Key)
			ttls[i] = pipe.PTTL(ctx, k.Key)
			exps[i] = pipe.Do(ctx, "PEXPIRETIME", k.Key)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && !isRedisError(err) {
			return nil, fmt.Errorf("%s: DUMP: %w", name, err)
		}
		st := &keyState{expires: make([]int64, len(keys)), errs: make([]error, len(keys))}
		noPexpiretime := false
		for i := range keys {
			p, err := dumps[i].Bytes()
			switch {
			case errors.Is(err, redis.Nil):
				st.digests = append(st.digests, zeroDigest)
			case err != nil:
				return nil, fmt.Errorf("%s: DUMP: %w", name, err)
			default:
				d, err := vd.ValueDigest(p, ttls[i].Val() >= 0)
				if err != nil {
					return nil, fmt.Errorf("%s: DUMP of %s: %w", name, quote(keys[i].Key), err)
				}
				st.digests = append(st.digests, d)
			}
			st.expires[i], st.errs[i] = exps[i].Int64()
			noPexpiretime = noPexpiretime || st.errs[i] != nil && strings.Contains(st.errs[i].Error(), "unknown command")
		}
		if noPexpiretime {
			st.expires, st.errs = nil, nil
		}
		return st, nil
	}}
}

// backupSide is the value digests and expire times the sample read from
// the backup itself.
func backupSide() side {
	return side{where: "in the backup", read: func(_ context.Context, _ int, keys []sampleKey) (*keyState, error) {
		st := &keyState{expires: make([]int64, len(keys))}
		for i, k := range keys {
			st.digests = append(st.digests, k.Digest)
			st.expires[i] = k.Expire
		}
		return st, nil
	}}
}

// readKeys reads DEBUG DIGEST-VALUE and PEXPIRETIME of keys in db of srv.
func readKeys(ctx context.Context, srv *scratch.Server, db int, keys []sampleKey) (*keyState, error) {
	c := srv.Client(db)
	defer c.Close()
	args := []any{"DEBUG", "DIGEST-VALUE"}
	for _, k := range keys {
		args = append(args, k.Key)
	}
	vals, err := c.Do(ctx, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("DEBUG DIGEST-VALUE: %w", err)
	}
	st := &keyState{digests: vals}
	cmds := make([]*redis.Cmd, len(keys))
	pipe := c.Pipeline()
	for i, k := range keys {
		cmds[i] = pipe.Do(ctx, "PEXPIRETIME", k.Key)
	}
	_, perr := pipe.Exec(ctx)
	switch {
	case perr != nil && strings.Contains(perr.Error(), "unknown command"):
		return st, nil
	case perr != nil && !isRedisError(perr):
		return nil, fmt.Errorf("PEXPIRETIME: %w", perr)
	}
	st.expires = make([]int64, len(keys))
	st.errs = make([]error, len(keys))
	for i := range cmds {
		st.expires[i], st.errs[i] = cmds[i].Int64()
	}
	return st, nil
}

// maxListedMismatches bounds Report.Mismatches.
const maxListedMismatches = 20

// compareSample compares keys between the loaded server a and the
// reference b, db by db: DEBUG DIGEST-VALUE and PEXPIRETIME must be equal,
// but for keys whose TTL ended during the drill. It records the sample
// check; same says what equal means ("equal to the backup").
func (r *drillRun) compareSample(ctx context.Context, keys []sampleKey, a, b side, same string) error {
	rep := r.rep
	byDB := map[int][]sampleKey{}
	for _, k := range keys {
		byDB[k.DB] = append(byDB[k.DB], k)
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
		ks := byDB[db]
		slices.SortFunc(ks, func(x, y sampleKey) int { return strings.Compare(x.Key, y.Key) })
		sa, err := a.read(ctx, db, ks)
		if err != nil {
			return err
		}
		sb, err := b.read(ctx, db, ks)
		if err != nil {
			return err
		}
		after := r.opts.Now().UnixMilli()
		noPexpiretime = noPexpiretime || sa.expires == nil || sb.expires == nil
		ended := func(e int64) bool { return e >= 0 && e <= after }
		for i, k := range ks {
			rep.SampleChecked++
			da, db2 := nth(sa.digests, i), nth(sb.digests, i)
			if da != db2 {
				switch {
				case db2 == zeroDigest && sa.expires != nil && (sa.expires[i] == -2 || ended(sa.expires[i])):
					// Its TTL ended during the drill: a primary drops it
					// when read.
				case da == zeroDigest && sb.expires != nil && ended(sb.expires[i]):
					// Its TTL had ended: read by DUMP, the server dropped it.
				case da == zeroDigest:
					mismatch("db %d key %s is missing %s", db, quote(k.Key), a.where)
				case db2 == zeroDigest:
					mismatch("db %d key %s is missing %s", db, quote(k.Key), b.where)
				default:
					mismatch("db %d key %s: value digest %s %s, %s %s", db, quote(k.Key), da, a.where, db2, b.where)
				}
				continue
			}
			if sa.expires == nil || sb.expires == nil {
				continue
			}
			if err := errors.Join(nthErr(sa.errs, i), nthErr(sb.errs, i)); err != nil {
				mismatch("db %d key %s: PEXPIRETIME: %v", db, quote(k.Key), err)
				continue
			}
			ea, eb := sa.expires[i], sb.expires[i]
			switch {
			case ea == eb:
			case ea == -2 && ended(eb), eb == -2 && ended(ea):
				// Expired meanwhile: a replica hides it from PEXPIRETIME
				// but keeps it (its DIGEST-VALUE matched, expire flag
				// included); the other side may not have seen it yet.
			default:
				mismatch("db %d key %s: expire time %s %s, %s %s", db, quote(k.Key), fmtExpire(ea), a.where, fmtExpire(eb), b.where)
			}
		}
	}
	what := "value digest and expire time"
	if noPexpiretime {
		what = "value digest (this redis-server has no PEXPIRETIME; expire times not compared)"
		rep.Notes = append(rep.Notes, "expire times of the sample were not compared: "+family(rep.ServerFamily)+" "+rep.RedisVersion+" has no PEXPIRETIME")
	}
	if rep.SampleMismatches == 0 {
		rep.check(CheckSample, true, "%d keys chosen by hash: %s %s", rep.SampleChecked, what, same)
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

func nthErr(s []error, i int) error {
	if i < len(s) {
		return s[i]
	}
	return nil
}

// functionNames lists the function libraries of srv, sorted; none on a
// server without FUNCTION.
func functionNames(ctx context.Context, srv *scratch.Server) ([]string, error) {
	c := srv.Client(0)
	defer c.Close()
	libs, err := c.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	if err != nil {
		if strings.Contains(err.Error(), "unknown command") {
			return []string{}, nil
		}
		return nil, fmt.Errorf("FUNCTION LIST: %w", err)
	}
	got := []string{}
	for _, l := range libs {
		got = append(got, l.Name)
	}
	slices.Sort(got)
	return got, nil
}

// checkFunctions records the functions check: got are the loaded
// server's libraries, want the reference's; same says where they were
// found equal, differ formats both lists when not.
func (r *drillRun) checkFunctions(got, want []string, same, differ string) {
	r.rep.Functions = got
	r.rep.FunctionsOK = slices.Equal(got, want)
	g, w := strings.Join(got, " "), strings.Join(want, " ")
	if r.rep.FunctionsOK {
		r.rep.check(CheckFunctions, true, "function libraries [%s] %s", g, same)
	} else {
		r.rep.check(CheckFunctions, false, differ, g, w)
	}
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

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }
