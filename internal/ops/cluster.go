package ops

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"redback/internal/catalog"
	"redback/internal/clusterset"
	"redback/internal/redisurl"
	"redback/internal/ship"
	"redback/internal/storage"
	"redback/internal/synth"
)

// ShardLease runs fn with the writable view of a cluster shard's source
// (created when new) while its writer lease is held: the one way a
// cluster's shards are written, by `redback snapshot`/`ship` (a lease per
// call, LeasedShards) and by the agent (its leases, held while it runs).
type ShardLease func(ctx context.Context, source string, fn func(ctx context.Context, repo storage.Backend) error) error

// LeasedShards is the ShardLease of a command: each call records the
// source in base if need be (its address: seed's, masked; seed may be nil) and holds the
// source's lease around fn (Leased).
func LeasedShards(base storage.Backend, seed *redisurl.URL, log *slog.Logger) ShardLease {
	addr := "" // a prune names no node
	if seed != nil {
		addr = seed.Redacted()
	}
	return func(ctx context.Context, source string, fn func(context.Context, storage.Backend) error) error {
		src, err := catalog.InitSource(ctx, base, source, addr)
		if err != nil {
			return err
		}
		return Leased(ctx, log, src.Backend(base), source, fn)
	}
}

// TakeSet backs up the cluster seed belongs to as one backup set
// (clusterset.Take): each shard's snapshot is taken by TakeSnapshot with
// p, written under lease. p.Store's Backend is set per shard.
func TakeSet(ctx context.Context, log *slog.Logger, base storage.Backend, seed *redisurl.URL, lease ShardLease, p SnapshotParams, o clusterset.TakeOptions) (*catalog.Set, error) {
	if o.Log == nil {
		o.Log = log
	}
	shard := func(ctx context.Context, source string, node *redisurl.URL) (*catalog.Snapshot, error) {
		var snap *catalog.Snapshot
		err := lease(ctx, source, func(ctx context.Context, repo storage.Backend) error {
			sp := p
			sp.PreferReplica = false // the node is chosen already
			sp.Store.Backend = repo
			sp.Store.Log = log.With("source", source)
			var err error
			snap, err = TakeSnapshot(ctx, sp.Store.Log, node, sp)
			return err
		})
		return snap, err
	}
	return clusterset.Take(ctx, base, seed, shard, o)
}

// TakeSetFromLog publishes a backup set of the cluster seed belongs to
// whose shards' snapshots are synthesized from their shipped logs
// (synth.Build of each shard source, under lease, with so; so's Backend
// and Log are set per shard): the nodes are asked for the topology only.
// A shard without a usable log fails the set with its *synth.NoLogError
// (or scratch.ErrNoServer), wrapped.
func TakeSetFromLog(ctx context.Context, log *slog.Logger, base storage.Backend, seed *redisurl.URL, lease ShardLease, so synth.Options, o clusterset.TakeOptions) (*catalog.Set, error) {
	if o.Log == nil {
		o.Log = log
	}
	o.FromLog = true
	shard := func(ctx context.Context, source string, _ *redisurl.URL) (*catalog.Snapshot, error) {
		var snap *catalog.Snapshot
		err := lease(ctx, source, func(ctx context.Context, repo storage.Backend) error {
			s := so
			s.Backend, s.Log = repo, log.With("source", source)
			res, err := synth.Build(ctx, s)
			if err != nil {
				return err
			}
			snap = res.Snapshot
			s.Log.Info("shard snapshot synthesized from the log", "id", snap.ID, "generation", snap.Generation, "offset", snap.Source.Offset,
				"base", res.Base, "segments", res.Segments, "commands", res.Commands)
			return nil
		})
		return snap, err
	}
	return clusterset.Take(ctx, base, seed, shard, o)
}

// ShardShipStatus is one shard of a cluster being shipped: where it is
// and its stream's state.
type ShardShipStatus struct {
	clusterset.ShardState
	ship.Stats
}

// ClusterShipper ships every shard of a cluster (clusterset.Shipping):
// one ship.Shipper per shard, made by NewShipper, following the shard's
// primary, writing under the shard source's lease. It is what `redback
// ship` of a cluster node and the agent run. Set the fields, then Run.
type ClusterShipper struct {
	Repo    storage.Backend // the repository (not a source's view)
	Seed    *redisurl.URL   // any node of the cluster
	Cluster string
	Lease   ShardLease
	// NewShipper makes a shard's shipper writing to repo; its Source,
	// Follow and Log are set here.
	NewShipper func(repo storage.Backend) *ship.Shipper
	Log        *slog.Logger
	Poll       time.Duration // clusterset.DefaultShipPoll when 0

	mu       sync.Mutex
	sp       *clusterset.Shipping
	shippers map[string]*ship.Shipper
}

// Run ships until ctx ends (nil) or a shard's stream fails; it may be
// called again after it returned.
func (c *ClusterShipper) Run(ctx context.Context) error {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sp := &clusterset.Shipping{Repo: c.Repo, Seed: c.Seed, Cluster: c.Cluster, Poll: c.Poll, Log: log}
	shippers := map[string]*ship.Shipper{}
	sp.Ship = func(ctx context.Context, source string, follow clusterset.FollowFunc) error {
		return c.Lease(ctx, source, func(ctx context.Context, repo storage.Backend) error {
			s := c.NewShipper(repo)
			s.Source = c.Seed
			s.Follow = follow
			s.Log = log.With("source", source)
			c.mu.Lock()
			shippers[source] = s
			c.mu.Unlock()
			return s.Run(ctx)
		})
	}
	c.mu.Lock()
	c.sp, c.shippers = sp, shippers
	c.mu.Unlock()
	return sp.Run(ctx)
}

// Shards is every shard's state, by source name (none before Run).
func (c *ClusterShipper) Shards() []ShardShipStatus {
	c.mu.Lock()
	sp := c.sp
	c.mu.Unlock()
	if sp == nil {
		return nil
	}
	var out []ShardShipStatus
	for _, sh := range sp.Shards() {
		c.mu.Lock()
		s := c.shippers[sh.Source]
		c.mu.Unlock()
		j := ShardShipStatus{ShardState: sh}
		if s != nil {
			j.Stats = s.Stats()
		}
		out = append(out, j)
	}
	return out
}

// Pinned is the union of the shards' pins (catalog.Policy.Pinned) for
// the snapshot id in source.
func (c *ClusterShipper) Pinned(source, id string) (bool, string) {
	c.mu.Lock()
	s := c.shippers[source]
	c.mu.Unlock()
	if s == nil {
		return false, ""
	}
	return s.Pinned(id)
}
