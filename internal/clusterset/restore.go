package clusterset

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"redback/internal/catalog"
	"redback/internal/cluster"
	"redback/internal/rdb"
	"redback/internal/redisurl"
	"redback/internal/resp"
	"redback/internal/restore"
	"redback/internal/storage"
)

// Defaults of RestoreOptions.
const (
	DefaultRounds = 10
	routeKeys     = 256       // records handed to a target's pipeline at once
	routeBytes    = 256 << 10 // or this many value bytes
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Restore are the options of each target primary's pipelined restore
	// (conflicts, connections, batches, timeouts, progress).
	Restore    restore.Options
	Identities []age.Identity
	// Rounds bounds the passes that re-send keys a target answered with
	// MOVED, ASK, TRYAGAIN or CLUSTERDOWN (DefaultRounds).
	Rounds int
	// Wait is the pause before each such pass (1 s if 0).
	Wait time.Duration
	Log  *slog.Logger
}

// TargetResult is what one target primary received.
type TargetResult struct {
	Addr         string `json:"addr"`
	Slots        int    `json:"slots"`
	KeysRestored int64  `json:"keys_restored"`
	KeysFailed   int64  `json:"keys_failed"`
	Redirected   int    `json:"keys_redirected"`
}

// RestoreResult is what Restore did: the sum of the targets' results, each
// target's share, and the keys written again after redirects.
type RestoreResult struct {
	restore.Result
	Cluster bool           `json:"cluster"` // the target is a cluster
	Targets []TargetResult `json:"targets"`
	// Resent counts keys written again through a cluster client after a
	// redirect (a resharding or failover during the restore), in Rounds.
	Resent int64 `json:"keys_resent"`
	Rounds int   `json:"resend_rounds"`
}

// SetOrder says how far apart a set's shards were cut: a cluster has no
// global order, and the shards' snapshots are taken in parallel, each at
// its own shard's replication offset, within the set's duration.
func SetOrder(set *catalog.Set) string {
	return fmt.Sprintf("a cluster has no global order: each shard's snapshot is its own cut (at that shard's replication offset), taken in parallel within %.3fs (%s to %s); a write to one shard in that window may be in the set while a later write to another shard is not",
		set.Duration, set.StartTime.UTC().Format(time.RFC3339Nano), set.EndTime.UTC().Format(time.RFC3339Nano))
}

// shardSource is one shard's snapshot, opened for reading.
type shardSource struct {
	src    restore.Source
	footer uint16
	dbs    []int // the source dbs holding keys (nil: db 0)
}

// Restore writes every key of set into the server or cluster at target:
// see the package doc. repo is the repository (not a source's view).
func Restore(ctx context.Context, repo storage.Backend, set *catalog.Set, target *redisurl.URL, o RestoreOptions) (*RestoreResult, error) {
	sources, version, err := openShards(ctx, repo, set, o.Identities)
	if err != nil {
		return &RestoreResult{}, err
	}
	return restoreShards(ctx, "set "+set.ID, sources, version, target, o)
}

// RestoreSource writes the keys of one RDB source (a standalone server's
// snapshot, or a file) into the cluster (or server) at target, routed by
// slot as Restore routes a set's shards. A cluster has db 0 only: the
// source's keys must be in one db that o.Restore.Filter sends to db 0 (its
// own db 0, or --db N --map-db N:0); a source whose kept keys are in two
// dbs, or go to another db, is refused (before any write when the source's
// dbs are known, else when the second db is met).
func RestoreSource(ctx context.Context, src restore.Source, target *redisurl.URL, o RestoreOptions) (*RestoreResult, error) {
	flt := &o.Restore.Filter
	var kept []int
	for _, d := range src.DBs {
		if flt.KeepDB(d) {
			kept = append(kept, d)
		}
	}
	if err := oneDB(src.Name, kept, flt); err != nil {
		return &RestoreResult{}, err
	}
	rc, err := src.Open(ctx)
	if err != nil {
		return &RestoreResult{}, err
	}
	rd, err := rdb.NewReader(rc, rdb.Options{})
	rc.Close()
	if err != nil {
		return &RestoreResult{}, fmt.Errorf("%s: %w", src.Name, err)
	}
	dbs := []int{0}
	if len(kept) > 0 {
		dbs = kept
	}
	return restoreShards(ctx, src.Name, []shardSource{{src: src, footer: uint16(rd.Version()), dbs: dbs}}, rd.Version(), target, o)
}

// oneDB refuses keys of the dbs kept going anywhere but db 0 of a
// cluster, or from more than one db.
func oneDB(name string, kept []int, flt *restore.Filter) error {
	for _, d := range kept {
		if to := flt.TargetDB(d); to != 0 {
			return fmt.Errorf("%s: keys of db %d would go to db %d, but a cluster has db 0 only: restore that db with --db %d --map-db %d:0", name, d, to, d, d)
		}
	}
	if len(kept) > 1 {
		return fmt.Errorf("%s holds keys in dbs %v, but a cluster has db 0 only: restore one db at a time with --db N --map-db N:0", name, kept)
	}
	return nil
}

// restoreShards routes the keys of sources (RDB streams of version) into
// target: see Restore.
func restoreShards(ctx context.Context, name string, sources []shardSource, version int, target *redisurl.URL, o RestoreOptions) (*RestoreResult, error) {
	if o.Rounds <= 0 {
		o.Rounds = DefaultRounds
	}
	if o.Wait <= 0 {
		o.Wait = time.Second
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	res := &RestoreResult{}
	if !o.Restore.NoPrecheck {
		// Prove every shard's stored bytes before the first write.
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(4)
		for _, s := range sources {
			if s.src.Precheck != nil {
				g.Go(func() error { return s.src.Precheck(gctx) })
			}
		}
		if err := g.Wait(); err != nil {
			return res, err
		}
	}
	// Where each slot goes.
	targets := []*redisurl.URL{target}
	var slotMap []int
	on, err := cluster.Enabled(ctx, target)
	if err != nil {
		return res, err
	}
	if on {
		topo, err := cluster.Discover(ctx, target)
		if err != nil {
			return res, err
		}
		if topo.Uncovered > 0 {
			return res, fmt.Errorf("target cluster: %d slots are served by no node: fix the cluster (redis-cli --cluster fix) before restoring", topo.Uncovered)
		}
		res.Cluster, slotMap, targets = true, topo.SlotMap(), nil
		for _, s := range topo.Shards {
			targets = append(targets, target.Node(s.Primary.Addr))
			res.Targets = append(res.Targets, TargetResult{Addr: s.Primary.Addr, Slots: s.SlotCount()})
		}
	} else {
		res.Targets = []TargetResult{{Addr: target.Addr}}
	}
	ro := o.Restore
	ro.NoPrecheck, ro.Cluster = true, on
	if ro.BatchBytes == 0 {
		// The pipelines share what one restore's batches take.
		ro.BatchBytes = max(restore.DefaultBatchBytes/len(targets), 256<<10)
	}
	if p := ro.Progress; p != nil {
		var mu sync.Mutex
		ro.Progress = func(bytes, keys int64) { mu.Lock(); p(bytes, keys); mu.Unlock() }
	}

	// One pipelined restore per target primary, fed by one router per
	// source shard.
	chans := make([]chan []routed, len(targets))
	for i := range chans {
		chans[i] = make(chan []routed, 2)
	}
	spools := make([]*restore.Spool, len(sources))
	defer func() {
		for _, sp := range spools {
			if sp != nil {
				sp.Close()
			}
		}
	}()
	dbs := []int{0}
	for _, s := range sources {
		for _, d := range s.dbs {
			if !slices.Contains(dbs, d) {
				dbs = append(dbs, d)
			}
		}
	}
	results := make([]*restore.Result, len(targets))
	g, gctx := errgroup.WithContext(ctx)
	for i, u := range targets {
		g.Go(func() error {
			var cur []routed
			var last *restore.Spool
			next := func(ctx context.Context) (*rdb.Record, error) {
				for len(cur) == 0 {
					select {
					case b, ok := <-chans[i]:
						if !ok {
							return nil, io.EOF
						}
						cur = b
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
				r := cur[0]
				cur = cur[1:]
				last = r.spool
				return r.rec, nil
			}
			spooled := func(*rdb.Record) *restore.Spool { return last }
			r, err := restore.FromRecords(gctx, restore.Records{Name: name, Version: version, DBs: dbs, Next: next, Spooled: spooled}, u, ro)
			results[i] = r
			if err != nil {
				return fmt.Errorf("target %s: %w", u.Addr, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer func() {
			for _, c := range chans {
				close(c)
			}
		}()
		rg, rctx := errgroup.WithContext(gctx)
		rg.SetLimit(4)
		for i, s := range sources {
			rg.Go(func() error {
				return route(rctx, s.src, i == 0, slotMap, chans, ro.MaxValueBytes, &ro.Filter, &spools[i])
			})
		}
		return rg.Wait()
	})
	err = g.Wait()
	redirected := map[string]bool{}
	for i, r := range results {
		if r == nil {
			continue
		}
		merge(&res.Result, r)
		res.Targets[i].KeysRestored, res.Targets[i].KeysFailed, res.Targets[i].Redirected = r.KeysRestored, r.KeysFailed, len(r.Redirected)
		for _, k := range r.Redirected {
			redirected[k] = true
		}
	}
	if err == nil && len(redirected) > 0 {
		log.Info("keys answered with a redirect: writing them again with a fresh slot map", "keys", len(redirected))
		err = resend(ctx, sources, target, res, redirected, o)
	}
	res.Duration = time.Since(start)
	return res, err
}

// openShards reads the manifests of the set's shard snapshots.
func openShards(ctx context.Context, repo storage.Backend, set *catalog.Set, ids []age.Identity) ([]shardSource, int, error) {
	var out []shardSource
	version := 0
	for _, sh := range set.Shards {
		view := catalog.NamedSource(sh.Source).Backend(repo)
		snap, err := catalog.ReadSnapshot(ctx, view, sh.Snapshot)
		if err != nil {
			return nil, 0, fmt.Errorf("set %s, shard %s: %w", set.ID, sh.Source, err)
		}
		if snap.Object.Encryption != "" && len(ids) == 0 {
			return nil, 0, fmt.Errorf("set %s: snapshot %s is encrypted (recipients %s): give --identity FILE or set $REDBACK_IDENTITY_FILE", set.ID, snap.ID, strings.Join(snap.Object.Recipients, ", "))
		}
		src := restore.SnapshotSource(view, snap, ids)
		src.Name = sh.Source + " snapshot " + snap.ID
		out = append(out, shardSource{src: src, footer: uint16(snap.RDBVersion)})
		version = max(version, snap.RDBVersion)
	}
	return out, version, nil
}

// routed is a record handed to a target's pipeline, with the spool that
// holds its value when it is Streamed (else nil).
type routed struct {
	rec   *rdb.Record
	spool *restore.Spool
}

// route reads one shard's snapshot and hands every key to the target that
// serves its slot (all to target 0 without a slot map); function libraries
// of the first shard go to every target (every node holds them). Into a
// cluster (a slot map), the keys flt keeps must all be of one db it sends
// to db 0. A value too big to hold is spooled to a temporary file (made
// into *spool, which the caller closes once every pipeline is done) and
// handed over at once with its record: the next one is spooled once that
// target's pipeline has sent it.
func route(ctx context.Context, src restore.Source, functions bool, slotMap []int, chans []chan []routed, maxValue int64, flt *restore.Filter, spool **restore.Spool) error {
	rc, err := src.Open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	var sp *restore.Spool
	spooled := false // the record Next returns next is in sp
	rd, err := rdb.NewReader(rc, rdb.Options{MaxValueBytes: maxValue, StreamStrings: true, StreamValues: func(rec *rdb.Record) (*rdb.Visitor, error) {
		if !flt.KeepDB(rec.DB) || !flt.KeepKey(rec.Key) {
			return nil, nil // checked as it passes, not restored
		}
		spooled = true
		return sp.Start(ctx, rec)
	}})
	if err != nil {
		return fmt.Errorf("%s: %w", src.Name, err)
	}
	sp = restore.NewSpool(rd.Version())
	*spool = sp
	var kept []int // the kept db seen, into a cluster
	pending := make([][]routed, len(chans))
	size := make([]int, len(chans))
	send := func(i int) error {
		if len(pending[i]) == 0 {
			return nil
		}
		select {
		case chans[i] <- pending[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		pending[i], size[i] = nil, 0
		return nil
	}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			// Read to the end so the stored object's size and sha256 are checked.
			if _, err := io.Copy(io.Discard, rc); err != nil {
				return fmt.Errorf("%s: %w", src.Name, err)
			}
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", src.Name, err)
		}
		switch rec.Kind {
		case rdb.RecordFunction:
			if !functions {
				continue
			}
			for i := range chans {
				c := *rec
				c.FunctionCode = slices.Clone(rec.FunctionCode)
				pending[i] = append(pending[i], routed{rec: &c})
			}
		case rdb.RecordKey:
			i := 0
			if slotMap != nil && flt.KeepDB(rec.DB) && !slices.Contains(kept, rec.DB) {
				if err := oneDB(src.Name, append(kept, rec.DB), flt); err != nil {
					return err
				}
				kept = append(kept, rec.DB)
			}
			if slotMap != nil {
				if i = slotMap[cluster.Slot(rec.Key)]; i < 0 {
					i = 0 // not served: the target answers with a redirect or CLUSTERDOWN, and resend retries
				}
			}
			c := *rec
			c.Key, c.Value = slices.Clone(rec.Key), slices.Clone(rec.Value)
			r := routed{rec: &c}
			if spooled {
				r.spool, spooled = sp, false
			}
			pending[i] = append(pending[i], r)
			size[i] += len(c.Value)
			if len(pending[i]) >= routeKeys || size[i] >= routeBytes || rec.Streamed {
				if err := send(i); err != nil {
					return err
				}
			}
		}
	}
	for i := range chans {
		if err := send(i); err != nil {
			return err
		}
	}
	return nil
}

// merge adds r's counts to into.
func merge(into, r *restore.Result) {
	into.KeysRestored += r.KeysRestored
	into.KeysSkipped += r.KeysSkipped
	into.KeysExpired += r.KeysExpired
	into.KeysFiltered += r.KeysFiltered
	into.KeysConverted += r.KeysConverted
	into.KeysRewritten += r.KeysRewritten
	into.KeysFailed += r.KeysFailed
	into.Failures = append(into.Failures, r.Failures...)
	into.FunctionsLoaded += r.FunctionsLoaded
	into.FunctionsSkipped += r.FunctionsSkipped
	into.Bytes += r.Bytes
	for _, n := range r.Notes {
		if !slices.Contains(into.Notes, n) {
			into.Notes = append(into.Notes, n)
		}
	}
}

// resend writes the keys in left again, reading the shards' snapshots once
// per round, through a cluster client that follows MOVED and ASK with a
// fresh slot map and retries TRYAGAIN and CLUSTERDOWN; keys still
// redirected, or that got no reply (a node down during a failover), wait
// for the next round (bounded by o.Rounds).
func resend(ctx context.Context, sources []shardSource, target *redisurl.URL, res *RestoreResult, left map[string]bool, o RestoreOptions) error {
	ro := target.GoRedisOptions()
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{target.Addr}, Username: ro.Username, Password: ro.Password, TLSConfig: ro.TLSConfig,
		DisableIdentity: true, MaxRedirects: 16, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
	})
	defer cc.Close()
	replace := o.Restore.Conflict == restore.ConflictReplace
	flt := &o.Restore.Filter
	now := time.Now().UnixMilli()
	var lastErr error // of the last key that got no reply
	for round := 1; round <= o.Rounds && len(left) > 0; round++ {
		res.Rounds = round
		t := time.NewTimer(o.Wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		cc.ReloadState(ctx)
		for _, s := range sources {
			rc, err := s.src.Open(ctx)
			if err != nil {
				return err
			}
			// A big value is spooled, and sent from the spool to the node
			// that serves its slot.
			var sp *restore.Spool
			rd, err := rdb.NewReader(rc, rdb.Options{MaxValueBytes: o.Restore.MaxValueBytes, StreamStrings: true, StreamValues: func(rec *rdb.Record) (*rdb.Visitor, error) {
				if !left[string(rec.Key)] || !flt.KeepDB(rec.DB) {
					return nil, nil
				}
				return sp.Start(ctx, rec)
			}})
			if err == nil {
				sp = restore.NewSpool(rd.Version())
			}
			for err == nil {
				var rec *rdb.Record
				if rec, err = rd.Next(); err != nil || rec.Kind != rdb.RecordKey || !left[string(rec.Key)] || !flt.KeepDB(rec.DB) {
					continue
				}
				var rerr error
				expired := rec.Expire > 0 && rec.Expire <= now
				switch {
				case expired:
					res.KeysExpired++
					delete(left, string(rec.Key))
				case rec.Streamed:
					rerr = resendSpooled(ctx, cc, target, rec, sp, s.footer, o)
				default:
					rerr = cc.Do(ctx, restore.RestoreArgs(rec, s.footer, replace)...).Err()
				}
				if rec.Streamed {
					sp.Release()
				}
				if expired {
					continue
				}
				re := replyError(rerr)
				switch {
				case rerr == nil:
					res.KeysRestored++
					res.Resent++
					delete(left, string(rec.Key))
				case re != "" && retryLater(re):
					// next round
				case strings.HasPrefix(re, "BUSYKEY") && o.Restore.Conflict == restore.ConflictSkip:
					res.KeysSkipped++
					delete(left, string(rec.Key))
				case re != "":
					res.KeysFailed++
					if len(res.Failures) < 100 {
						res.Failures = append(res.Failures, restore.Failure{DB: 0, Key: string(rec.Key), Reason: re})
					}
					delete(left, string(rec.Key))
				case ctx.Err() != nil:
					rc.Close()
					sp.Close()
					return ctx.Err()
				default:
					// Not a reply: a node unreachable during a failover, say.
					// The next round tries again with a fresh slot map.
					lastErr = rerr
				}
			}
			rc.Close()
			if sp != nil {
				sp.Close()
			}
			if err != io.EOF {
				return fmt.Errorf("%s: %w", s.src.Name, err)
			}
		}
	}
	if len(left) > 0 {
		res.KeysFailed += int64(len(left))
		for k := range left {
			if len(res.Failures) >= 100 {
				break
			}
			reason := fmt.Sprintf("still redirected after %d rounds", o.Rounds)
			if lastErr != nil {
				reason += fmt.Sprintf(" (last error without a reply: %v)", lastErr)
			}
			res.Failures = append(res.Failures, restore.Failure{DB: 0, Key: k, Reason: reason})
		}
	}
	return nil
}

// resendSpooled writes the key of rec, its value in sp, to the node the
// cluster client says serves its slot, following one ASK to the node
// importing it; other redirects wait for the next round.
func resendSpooled(ctx context.Context, cc *redis.ClusterClient, target *redisurl.URL, rec *rdb.Record, sp *restore.Spool, footer uint16, o RestoreOptions) error {
	node, err := cc.MasterForKey(ctx, string(rec.Key))
	if err != nil {
		return err
	}
	replace := o.Restore.Conflict == restore.ConflictReplace
	timeout := cmp.Or(o.Restore.Timeout, restore.DefaultTimeout)
	err = restore.RestoreSpooled(ctx, target.Node(node.Options().Addr), rec, sp, footer, replace, false, timeout)
	if re := replyError(err); strings.HasPrefix(re, "ASK ") {
		if f := strings.Fields(re); len(f) == 3 {
			err = restore.RestoreSpooled(ctx, target.Node(f[2]), rec, sp, footer, replace, true, timeout)
		}
	}
	return err
}

// replyError is the text of err when it is a server's error reply (from
// go-redis or from restore), else "".
func replyError(err error) string {
	var re redis.Error
	var rr resp.Error
	switch {
	case errors.As(err, &rr):
		return string(rr)
	case errors.As(err, &re):
		return re.Error()
	}
	return ""
}

func retryLater(msg string) bool {
	for _, p := range []string{"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
