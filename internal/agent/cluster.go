package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"redback/internal/catalog"
	"redback/internal/clusterset"
	"redback/internal/config"
	"redback/internal/ops"
	"redback/internal/storage"
)

// ShardStatus is one shard of a cluster source being shipped.
type ShardStatus struct {
	Source  string   `json:"source"` // the shard's repository source
	Slots   [][2]int `json:"slots"`
	Primary string   `json:"primary_address"`
	ShipStatus
}

// ShardedShipper is implemented by the shipper of a cluster source: one
// stream per shard.
type ShardedShipper interface {
	Shards() []ShardStatus
}

// shardLeases are the writer leases of a cluster's shard sources: those
// the repository holds and those the cluster has at the start are taken
// then (a second agent on the cluster refuses to start, as for a single
// server), a shard that appears later the first time it is written; each
// is held (renewed in the agent's lease group: a lost one stops the agent,
// as for any source) until the agent stops. The snapshot sets and the shipping of the cluster both
// write through them (ops.ShardLease).
type shardLeases struct {
	a    *Agent
	base storage.Backend // the repository
	addr string          // the cluster's seed node (masked), recorded in new sources
	hard context.Context // ends with the grace period

	mu      sync.Mutex
	held    map[string]*heldLease
	renew   func(*catalog.Lease) // starts renewing a new lease; nil before the agent runs and after stop
	pending []*catalog.Lease     // taken before renew was set
	stopped bool
}

type heldLease struct {
	l    *catalog.Lease
	view storage.Backend // the source's view, guarded by l and hard
}

// lease runs fn with source's view under its lease; fn's context ends
// when the lease is lost.
func (p *shardLeases) lease(ctx context.Context, source string, fn func(context.Context, storage.Backend) error) error {
	h, err := p.get(ctx, source)
	if err != nil {
		return err
	}
	work, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	unhook := context.AfterFunc(h.l.Context(), func() { cancel(context.Cause(h.l.Context())) })
	defer unhook()
	return fn(work, h.view)
}

func (p *shardLeases) get(ctx context.Context, source string) (*heldLease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h, ok := p.held[source]; ok {
		return h, nil
	}
	if p.stopped {
		return nil, errors.New("the agent is stopping")
	}
	ref, err := catalog.InitSource(ctx, p.base, source, p.addr)
	if err != nil {
		return nil, err
	}
	view := ref.Backend(p.base)
	l, err := catalog.AcquireLease(ctx, view, p.a.holder, p.a.cfg.LeaseTTL.D())
	if err != nil {
		return nil, err
	}
	if l.TookOver != "" {
		p.a.log.Warn("took over the lease of a writer that is gone", "source", source, "holder", l.TookOver)
	}
	p.a.log.Info("lease taken", "source", source, "repo", p.base.Location(), "holder", p.a.holder)
	h := &heldLease{l: l, view: l.Guard(storage.Guard(view, p.hard, func() error { return nil }))}
	if p.held == nil {
		p.held = map[string]*heldLease{}
	}
	p.held[source] = h
	if p.renew != nil {
		p.renew(l)
	} else {
		p.pending = append(p.pending, l)
	}
	return h, nil
}

// start renews the leases held and those taken from now on with renew.
func (p *shardLeases) start(renew func(*catalog.Lease)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.renew = renew
	for _, l := range p.pending {
		renew(l)
	}
	p.pending = nil
}

// stop takes no new lease; release gives back those held.
func (p *shardLeases) stop() {
	p.mu.Lock()
	p.renew, p.stopped = nil, true
	p.mu.Unlock()
}

// takeShardLeases takes the lease of every shard source of the cluster: those the
// repository holds and those the cluster serves now (shards, when set).
// A lease held by another writer is the agent's refusal to start.
func (a *Agent) takeShardLeases(ctx context.Context, s *source) error {
	n := s.cfg.Name
	names, err := clusterset.ShardSources(ctx, s.shards.base, n)
	if err != nil && !errors.Is(err, catalog.ErrNoRepository) { // a new repository: made by the first lease
		return fmt.Errorf("source %s: %w", n, err)
	}
	if a.opts.ClusterShards != nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		now, err := a.opts.ClusterShards(cctx, s.cfg)
		cancel()
		if err != nil {
			a.log.Warn("could not read the cluster's shards at the start: the leases of shards the repository does not hold yet are taken when first written",
				"source", n, "err", s.scrub(err))
		}
		for _, x := range now {
			if !slices.Contains(names, x) {
				names = append(names, x)
			}
		}
	}
	slices.Sort(names)
	for _, x := range names {
		if _, err := s.shards.get(ctx, x); err != nil {
			return fmt.Errorf("source %s: shard %s: %w", n, x, err)
		}
	}
	return nil
}

func (p *shardLeases) release(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, h := range p.held {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := h.l.Release(rctx); err != nil && !errors.Is(err, catalog.ErrLeaseLost) {
			p.a.log.Warn("release lease", "source", name, "err", err)
		}
		cancel()
	}
}

// isCluster says whether s is a node of a Redis Cluster whose whole
// cluster is backed up: by its cluster setting, else (auto) by asking the
// node once. A node that cannot be asked is taken for a server, with a
// warning (cluster: whole makes sure).
func (a *Agent) isCluster(ctx context.Context, s *source) bool {
	switch {
	case s.cfg.Cluster == config.ClusterWhole:
		return true
	case s.cfg.Cluster == config.ClusterSingleNode || a.opts.Cluster == nil:
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	on, err := a.opts.Cluster(cctx, s.cfg)
	if err != nil {
		a.log.Warn("could not ask the source whether it is a cluster node: backing it up as one server (set cluster: whole or single-node to be sure)",
			"source", s.cfg.Name, "err", s.scrub(err))
		return false
	}
	return on
}

// initCluster sets up s, a node of a cluster: no source of its name is
// made; its shards are sources NAME-shard-N, each leased (takeShardLeases).
func (a *Agent) initCluster(ctx context.Context, s *source, b storage.Backend, hard context.Context) error {
	n := s.cfg.Name
	if err := catalog.ValidSourceName(n); err != nil || len(n) > 52 {
		return fmt.Errorf("source %s: a cluster's name must be a valid source name of at most 52 characters (its shards are NAME-shard-NNNNN)", n)
	}
	s.shards = &shardLeases{a: a, base: b, addr: config.Redact(s.cfg.Source), hard: hard}
	s.repo = storage.Guard(b, hard, func() error { return nil })
	if err := a.takeShardLeases(ctx, s); err != nil {
		return err
	}
	a.log.Info("the source is a node of a Redis Cluster: backing up the whole cluster, one source per shard", "source", n, "shards", n+"-shard-NNNNN")
	if s.drillSch != nil && a.opts.DrillSet == nil {
		a.log.Warn("drills of a cluster's sets are not available in this build: drill off for this source", "source", n)
		s.drillSch = nil
	}
	if s.cfg.Ship.Enabled && a.opts.NewClusterShipper != nil {
		sh, err := a.opts.NewClusterShipper(s.cfg, s.repo, s.shards.lease)
		if err != nil {
			return fmt.Errorf("source %s: shipper: %w", n, err)
		}
		s.shipper = sh
	}
	a.seed(ctx, s)
	return nil
}

// seedSets initialises a cluster source's state from its newest set.
func (a *Agent) seedSets(ctx context.Context, s *source) {
	n := s.cfg.Name
	sets, _, err := catalog.ListSets(ctx, s.repo, n)
	if err != nil {
		a.log.Warn("list sets", "source", n, "err", err)
		return
	}
	a.m.repoSnapshots.WithLabelValues(n).Set(float64(len(sets)))
	if len(sets) > 0 { // newest first
		s.snap.LastSuccess, s.snap.LastID = sets[0].EndTime, sets[0].ID
		a.m.snapLast.WithLabelValues(n).Set(float64(sets[0].EndTime.UnixNano()) / 1e9)
	}
	for _, set := range sets {
		if set.Method == catalog.MethodLog {
			s.fromLog.Snapshot = set.ID
			break
		}
	}
}

// setPinner is implemented by a cluster's shipper: what each shard's log
// depends on (catalog.Policy.Pinned, per shard source).
type setPinner interface {
	Pinned(source, id string) (bool, string)
}

// retainSets applies retention to a cluster source: its sets kept or
// dropped whole, then its shards' sources (ops.PruneCluster).
func (a *Agent) retainSets(ctx context.Context, s *source) {
	n := s.cfg.Name
	var pinned func(source, id string) (bool, string)
	if pn, ok := s.shipper.(setPinner); ok {
		pinned = pn.Pinned
	}
	now := a.clock.Now()
	res, err := ops.PruneCluster(ctx, s.repo, n, s.shards.lease, ops.PruneParams{Policy: Policy(s.cfg.Retention), Now: now}, pinned)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ret.LastRun = now
	if res != nil {
		deleted, failures, kept := int64(len(res.DeletedSets)), 0, int64(0)
		for _, sh := range res.Shards {
			deleted += int64(len(sh.Deleted))
			failures += sh.Failures
			kept += sh.KeptBytes
		}
		s.ret.Deleted += deleted
		s.ret.Failures += int64(failures)
		s.ret.KeptBytes = kept
		s.ret.Snapshots = len(res.Sets) - len(res.DeletedSets)
		a.m.retDeletions.WithLabelValues(n).Add(float64(deleted))
		a.m.retFailures.WithLabelValues(n).Add(float64(failures))
		a.m.repoBytes.WithLabelValues(n).Set(float64(kept))
		a.m.repoSnapshots.WithLabelValues(n).Set(float64(s.ret.Snapshots))
		if len(res.DeletedSets) > 0 {
			a.log.Info("retention", "source", n, "deleted_sets", len(res.DeletedSets), "deleted_snapshots", deleted-int64(len(res.DeletedSets)))
		}
	}
	if err != nil {
		s.ret.Failures++
		a.m.retFailures.WithLabelValues(n).Inc()
		s.ret.LastError = s.scrub(err)
		a.log.Error("retention failed", "source", n, "err", s.ret.LastError)
		return
	}
	s.ret.LastError = ""
}
