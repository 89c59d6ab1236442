package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"redback/internal/digest"
	"redback/internal/keysample"
	"redback/internal/pack"
	"redback/internal/pitr"
	"redback/internal/progress"
	"redback/internal/rdb"
	"redback/internal/redisurl"
	"redback/internal/restore"
	"redback/internal/scratch"
	"redback/internal/storage"
)

// pointDatabases is the number of databases of the scratch servers of a
// point-in-time drill: the log may SELECT any db, not only those of the
// base snapshot's census.
const pointDatabases = 256

// point drills the point in time opts.At.
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
func (r *drillRun) point() (*Report, error) {
	ctx, opts, start, at := r.ctx, r.opts, r.start, r.opts.At
	r.rep = &Report{Repo: opts.Backend.Location(), Started: start.UTC(), Phases: map[string]float64{},
		Functions: []string{}, RTOObjectiveSeconds: opts.RTOObjective.Seconds(),
		Point: &Point{Kind: PointPITR, Requested: at}}
	rep := r.rep

	windows, err := pitr.Windows(ctx, opts.Backend)
	if err != nil {
		return rep, fmt.Errorf("read the log generations: %w", err)
	}
	newest, _ := pitr.NewestDurable(windows)
	target := pitr.AtTime(at)
	if opts.Latest {
		target = pitr.Latest()
		if at.IsZero() {
			at = start // for the fallback to the newest snapshot
		}
		if newest != nil {
			at = newest.To
		}
		rep.Point.Requested = at
	}
	atNewest := newest != nil && !at.Before(newest.To)
	plan, perr := pitr.NewPlan(ctx, opts.Backend, target, pitr.Options{Identities: opts.Identities})
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
	if errors.Is(perr, pitr.ErrUncertain) {
		// Inside an interval where the log only bounds when commands ran:
		// drill the exact point before it.
		rep.Notes = append(rep.Notes, perr.Error()+": the earliest side is drilled")
		target.Uncertain = pitr.UncertainEarliest
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
		note := fmt.Sprintf("no log generation covers %s, so the newest verified snapshot that ended at or before it was drilled (%s); %v",
			fmtTime(at), snap.ID, perr)
		return r.snapshot(snap, []string{note})
	case errors.Is(perr, pitr.ErrGap), pack.VerificationFailed(perr), errors.Is(perr, storage.ErrNotExist):
		rep.check(CheckRestore, false, "%s", damage(perr))
		return rep, nil
	default:
		return rep, perr
	}
	rep.Notes = append(rep.Notes, plan.Notes...)
	for _, w := range windows {
		if w.Generation == plan.Generation.ID && len(w.Uncertain) > 0 {
			var us []string
			for _, u := range w.Uncertain {
				us = append(us, fmtTime(u.From)+" .. "+fmtTime(u.To))
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("generation %s has stretches where commands ran at times only known within an interval (re-sent after a reconnect): %s; a time inside one restores only with --uncertain earliest|latest",
				w.Generation, strings.Join(us, ", ")))
		}
	}
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
	if atNewest || newest != nil && plan.Generation.ID == newest.Generation && plan.Offset >= newest.ToOffset {
		rep.RPOSeconds = max(0, start.Sub(newest.To).Seconds())
	} else {
		rep.RPOSeconds = max(0, start.Sub(plan.Time).Seconds())
		if newest != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the drilled point (generation %s, offset %d, %s) comes before the newest durable point (generation %s, offset %d, %s): the RPO reported is the age of the drilled point",
				plan.Generation.ID, plan.Offset, fmtTime(plan.Time), newest.Generation, newest.ToOffset, fmtTime(newest.To)))
		}
	}

	var locked error
	if encrypted {
		locked = fmt.Errorf("the point at %s is encrypted (base snapshot %s or its log): give --identity FILE (or $REDBACK_IDENTITY_FILE)", fmtTime(plan.Time), base.ID)
	}
	srv, cleanup, err := r.setUp(base, "base snapshot "+base.ID, locked)
	if err != nil {
		return rep, err
	}
	defer cleanup()

	// Phase "restore": the point as a multi-part AOF dir (base + log).
	done := r.phase(PhaseRestore)
	ro := restore.Options{Now: opts.Now}
	var bar *progress.Bar // nil-safe
	if opts.NewBar != nil {
		bar = opts.NewBar(PhaseRestore, base.Object.RawBytes)
		ro.Progress = func(bytes, keys int64) { bar.Add(bytes, keys) }
	}
	res, rerr := plan.ToDir(ctx, srv.Dir, ro)
	bar.Done()
	done()
	if rerr != nil {
		return rep, r.restoreFailed(rerr, damage(rerr))
	}
	if res.Base != nil {
		rep.KeysAlreadyExpired = res.Base.KeysExpired
	}
	rep.check(CheckRestore, true, "base snapshot %s and %d log segments of generation %s verified (size, sha256, %s, every record); %d commands up to offset %d (received %s) written as a multi-part AOF",
		base.ID, len(plan.Segments), plan.Generation.ID, sealing(base), res.Commands, plan.Offset, fmtTime(plan.Time))

	// Phase "load": redis-server loads the AOF dir.
	if ok, err := r.load(srv, scratch.Options{Databases: pointDatabases, AOFDir: pitr.AOFDirName}, "the AOF dir (base RDB and log)", 0); !ok {
		return rep, err
	}

	// Phase "replay": the same point through redback's replay.
	done = r.phase(PhaseReplay)
	srv2, rres, ok, err := r.replay(plan)
	if srv2 != nil { // started, even when the replay then failed
		defer srv2.Close()
	}
	done()
	if err != nil || !ok {
		return rep, err
	}

	// Phase "checks": both servers must hold the same data. Nothing on
	// the replay server expires from here on (active expiry is off and no
	// key is read before the comparison), so a key with a TTL later than
	// cutoff is on both servers or the paths disagree.
	p := &pointProof{drillRun: r, loaded: srv, replayed: srv2, cutoff: opts.Now().UnixMilli(), rres: rres}
	return rep, r.prove(p, "the verified point")
}

// replay starts the second scratch server (a primary, active expiry off)
// and restores plan into it with Plan.ToRedis. ok is false when a check
// failed (recorded in the report). The server is returned to be closed by
// the caller, even on error (Close is nil-safe).
func (r *drillRun) replay(plan *pitr.Plan) (*scratch.Server, *pitr.Result, bool, error) {
	ctx, rep := r.ctx, r.rep
	srv, err := r.newServer()
	if err != nil {
		return nil, nil, false, err
	}
	if err := r.serve(srv, scratch.Options{Databases: pointDatabases, Primary: true}, "replay scratch server", nil); err != nil {
		var le *LoadError
		if errors.As(err, &le) {
			rep.check(CheckReplay, false, "the replay scratch server did not start: %s", le.Detail)
			return srv, nil, false, nil
		}
		return srv, nil, false, err
	}
	c := srv.Client(0)
	// A primary expires keys by itself; keys whose TTL passes during the
	// drill must stay for the comparison.
	err = c.Do(ctx, "DEBUG", "SET-ACTIVE-EXPIRE", "0").Err()
	c.Close()
	if err != nil {
		return srv, nil, false, fmt.Errorf("DEBUG SET-ACTIVE-EXPIRE on the replay scratch server: %w", err)
	}
	u, err := redisurl.Parse("redis://"+srv.Addr(), redisurl.Options{})
	if err != nil {
		return srv, nil, false, err
	}
	res, err := plan.ToRedis(ctx, u, restore.Options{Now: r.opts.Now})
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return srv, res, false, ctx.Err()
		case srv.Exited():
			rep.check(CheckReplay, false, "the replay scratch server exited during the replay: %s", srv.LogTail(8))
			return srv, res, false, nil
		case res != nil && res.Errors > 0, pack.VerificationFailed(err), errors.Is(err, storage.ErrNotExist):
			rep.check(CheckReplay, false, "%v", err)
			return srv, res, false, nil
		}
		return srv, res, false, fmt.Errorf("replay into the scratch server: %w", err)
	}
	rep.check(CheckReplay, true, "base snapshot %s restored and %d commands (%s) replayed into a second scratch server on %s",
		plan.Base.ID, res.Commands, progress.HumanBytes(res.Bytes), srv.Addr())
	return srv, res, true, nil
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

// pointProof compares the server that loaded the AOF dir with the one
// the log was replayed into.
type pointProof struct {
	*drillRun
	loaded, replayed *scratch.Server
	cutoff           int64        // unix ms: see keys
	rres             *pitr.Result // of the replay
	dbs              []int        // holding keys on either server
}

// keys compares the key count per db and DEBUG DIGEST of the two servers.
//
// When they differ, both servers SAVE and the two RDB files are compared
// leaving out the keys whose TTL ended at or before cutoff: the AOF server
// (a replica) keeps every key of the point, while the replay into a live
// primary drops keys whose TTL passed between the point and the drill.
// The rest, counted per db and digested as DEBUG DIGEST does, must be
// equal.
func (p *pointProof) keys(ctx context.Context, _ int) error {
	rep := p.rep
	k1, k2, err := onBoth(ctx, p, keyspace)
	if err != nil {
		return err
	}
	p.dbs = dbsOf(k1, k2)
	rep.Keys, rep.ExpectedKeys = 0, 0
	for _, db := range p.dbs {
		rep.Keys += k1[db]
		rep.ExpectedKeys += k2[db]
	}
	diffs := keyDiffs(k1, k2, func(db int) string {
		return fmt.Sprintf("db %d has %d keys after loading the AOF dir, %d after the replay", db, k1[db], k2[db])
	})
	d1, d2, err := onBoth(ctx, p, debugDigest)
	if err != nil {
		return err
	}
	rep.Digest, rep.ExpectedDigest, rep.AOFDigest, rep.ReplayDigest = d1, d2, d1, d2
	if d1 == d2 && len(diffs) == 0 {
		rep.DigestMatch = true
		rep.check(CheckKeys, true, "%d keys in %d dbs on both servers", rep.Keys, len(p.dbs))
		rep.check(CheckDigest, true, "DEBUG DIGEST %s of the server that loaded the AOF dir equals that of the server the log was replayed into", d1)
		return nil
	}

	l1, l2, err := onBoth(ctx, p, func(ctx context.Context, s *scratch.Server) (*live, error) { return saveLive(ctx, s, p.cutoff) })
	if err != nil {
		return err
	}
	cut := time.UnixMilli(p.cutoff)
	ldiffs := keyDiffs(l1.keys, l2.keys, func(db int) string {
		return fmt.Sprintf("db %d has %d live keys after loading the AOF dir, %d after the replay", db, l1.keys[db], l2.keys[db])
	})
	expired := fmt.Sprintf("%d keys after loading the AOF dir and %d after the replay had a TTL that ended by %s", l1.expired, l2.expired, fmtTime(cut))
	if len(ldiffs) == 0 {
		rep.check(CheckKeys, true, "%d keys in %d dbs on both servers whose TTL had not ended by %s (%s: a replay into a live server drops those)",
			l1.total(), len(p.dbs), fmtTime(cut), expired)
	} else {
		rep.check(CheckKeys, false, "%s; %s", strings.Join(append(diffs, ldiffs...), "; "), expired)
	}
	rep.DigestMatch = l1.digest == l2.digest
	if rep.DigestMatch {
		rep.check(CheckDigest, true, "DEBUG DIGEST %s after loading the AOF dir, %s after the replay, differ only by keys whose TTL ended before the drill; without them both digest to %s (%s)",
			d1, d2, l1.digest, expired)
	} else {
		why := ""
		if p.rres != nil && p.rres.Base != nil && p.rres.Base.KeysExpired > 0 {
			why = fmt.Sprintf("; the replay's base restore dropped %d keys that had expired", p.rres.Base.KeysExpired)
		}
		rep.check(CheckDigest, false, "DEBUG DIGEST %s after loading the AOF dir, %s after the replay; without keys whose TTL ended by %s still %s and %s: the two restore paths disagree (%s%s)",
			d1, d2, fmtTime(cut), l1.digest, l2.digest, expired, why)
	}
	return nil
}

// sample compares n keys chosen by hash among those on the AOF server on
// both servers: DEBUG DIGEST-VALUE and PEXPIRETIME must be equal.
func (p *pointProof) sample(ctx context.Context, n int) error {
	keys, err := scanSample(ctx, p.loaded, p.dbs, n)
	if err != nil {
		return err
	}
	return p.compareSample(ctx, keys,
		serverSide(p.loaded, "the AOF scratch server", "after loading the AOF dir"),
		serverSide(p.replayed, "the replay scratch server", "after the replay"),
		"equal on both servers")
}

// functions compares the function libraries of the two servers.
func (p *pointProof) functions(ctx context.Context) error {
	f1, f2, err := onBoth(ctx, p, functionNames)
	if err != nil {
		return err
	}
	p.checkFunctions(f1, f2, "on both servers", "function libraries [%s] after loading the AOF dir, [%s] after the replay")
	return nil
}

// onBoth runs f on the server that loaded the AOF dir, then on the one the
// log was replayed into; an error names the server.
func onBoth[T any](ctx context.Context, p *pointProof, f func(context.Context, *scratch.Server) (T, error)) (a, b T, err error) {
	if a, err = f(ctx, p.loaded); err != nil {
		return a, b, fmt.Errorf("the AOF scratch server: %w", err)
	}
	if b, err = f(ctx, p.replayed); err != nil {
		return a, b, fmt.Errorf("the replay scratch server: %w", err)
	}
	return a, b, nil
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
func saveLive(ctx context.Context, s *scratch.Server, cutoff int64) (*live, error) {
	c := s.Client(0)
	err := c.Do(ctx, "SAVE").Err()
	c.Close()
	if err != nil {
		return nil, fmt.Errorf("SAVE: %w", err)
	}
	path := filepath.Join(s.Dir, "dump.rdb")
	defer os.Remove(path)
	d := digest.New(digest.Options{})
	l := &live{keys: map[int]int64{}}
	gone := func(rec *rdb.Record) bool { return rec.Expire >= 0 && rec.Expire <= cutoff }
	// A big value is streamed into d, unless its key is left out.
	stream := func(rec *rdb.Record) (*rdb.Visitor, error) {
		if gone(rec) {
			return nil, nil
		}
		return d.Stream(rec)
	}
	err = eachRecord(ctx, path, stream, func(rec *rdb.Record) error {
		if rec.Kind != rdb.RecordKey {
			return nil
		}
		if gone(rec) {
			l.expired++
			return nil
		}
		l.keys[rec.DB]++
		return d.Add(rec)
	})
	if err != nil {
		return nil, err
	}
	l.digest = d.Sum()
	return l, nil
}

// scanSample picks the n keys with the smallest keysample.Hash among the keys
// SCAN returns in dbs (a replica's SCAN leaves out keys whose TTL passed;
// DEBUG DIGEST covers those).
func scanSample(ctx context.Context, s *scratch.Server, dbs []int, n int) ([]sampleKey, error) {
	smp := keysample.New(n, digest.Score70)
	for _, db := range dbs {
		c := s.Client(db)
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, "", 1000).Result()
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("SCAN db %d on the AOF scratch server: %w", db, err)
			}
			for _, k := range keys {
				smp.OfferName(db, k)
			}
			cursor = next
			if cursor == 0 {
				break
			}
		}
		c.Close()
	}
	return smp.Keys(), nil
}
