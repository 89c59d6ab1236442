package clusterset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"redback/internal/catalog"
	"redback/internal/cluster"
	"redback/internal/digest"
	"redback/internal/redisurl"
	"redback/internal/storage"
)

// Defaults of TakeOptions.
const (
	DefaultParallel      = 4
	DefaultMigrationWait = 30 * time.Second
)

// ShardFunc takes the snapshot of one shard: source is the repository
// source to store it in, node the URL of the node to read.
type ShardFunc func(ctx context.Context, source string, node *redisurl.URL) (*catalog.Snapshot, error)

// TakeOptions tune Take.
type TakeOptions struct {
	Cluster       string // the set's cluster name (source names derive from it)
	PreferReplica bool   // read an online replica of each shard when there is one
	Parallel      int    // shards snapshotted at once (DefaultParallel)
	// MigrationWait is how long to wait for migrating or importing slots
	// to settle before refusing (DefaultMigrationWait; <0: refuse at once).
	MigrationWait time.Duration
	// Poll is the interval between checks while waiting (1 s if 0).
	Poll time.Duration
	Log  *slog.Logger
	// FromLog says the shards' snapshots are synthesized from their
	// shipped logs (the shard function reads no node): the set records
	// method log and each shard's primary as the node.
	FromLog bool
}

// MigratingError is returned while slots still migrate after the wait.
type MigratingError struct {
	Migrations []cluster.Migration
	Waited     time.Duration
}

func (e *MigratingError) Error() string {
	var s []string
	for _, m := range e.Migrations {
		s = append(s, m.String())
	}
	return fmt.Sprintf("slots are migrating or importing (%s) after waiting %s: a backup set taken now could miss or double keys; retry when the resharding is done (or raise --migration-wait)",
		strings.Join(s, ", "), e.Waited.Round(time.Second))
}

// Take backs up the cluster that seed belongs to as one set: see the
// package doc. The set manifest is written to repo (the repository, not a
// source's view) after every shard's snapshot.
func Take(ctx context.Context, repo storage.Backend, seed *redisurl.URL, shard ShardFunc, o TakeOptions) (*catalog.Set, error) {
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.MigrationWait == 0 {
		o.MigrationWait = DefaultMigrationWait
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	topo, mig, err := settled(ctx, seed, o)
	if err != nil {
		return nil, err
	}
	set := &catalog.Set{Format: catalog.FormatVersion, ID: catalog.NewSnapshotID(start), Cluster: o.Cluster,
		StartTime: start.UTC(), Seed: seed.Redacted(), Via: topo.Via, Migration: mig}
	if o.FromLog {
		set.Method = catalog.MethodLog
	}
	set.Shards = make([]catalog.SetShard, len(topo.Shards))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Parallel)
	for i, s := range topo.Shards {
		g.Go(func() error {
			node := s.Read(o.PreferReplica && !o.FromLog)
			name := catalog.ShardSourceName(o.Cluster, s.FirstSlot())
			log.Info("snapshot of a shard", "source", name, "slots", rangesText(s.Slots), "node", node.Addr, "primary", node.Primary)
			snap, err := shard(gctx, name, seed.Node(node.Addr))
			if err != nil {
				return fmt.Errorf("shard %s (slots %s, node %s): %w", name, rangesText(s.Slots), node.Addr, err)
			}
			sh := catalog.SetShard{Source: name, Snapshot: snap.ID, Primary: s.Primary.ID, PrimaryAddress: s.Primary.Addr,
				Node: node.ID, NodeAddress: node.Addr, Role: "primary", ReplID: snap.Source.ReplID, Offset: snap.Source.Offset,
				Keys: snap.Census.Keys, Digest: snap.Digest}
			if !node.Primary {
				sh.Role = "replica"
			}
			for _, r := range s.Slots {
				sh.Slots = append(sh.Slots, [2]int(r))
			}
			set.Shards[i] = sh
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// The slots each shard served must not have moved meanwhile.
	after, err := cluster.Discover(ctx, seed)
	if err != nil {
		return nil, fmt.Errorf("check the topology after the shards' snapshots: %w", err)
	}
	if !sameSlots(topo, after) || len(after.Migrations) > 0 {
		return nil, errors.New("the cluster's slots moved while the shards were copied (a resharding or a failover started): no set was published; take it again")
	}
	digests := make([]string, len(set.Shards))
	for i, sh := range set.Shards {
		digests[i] = sh.Digest
		set.Keys += sh.Keys
	}
	if set.Digest, err = digest.Union(digests...); err != nil {
		return nil, err
	}
	end := time.Now()
	set.EndTime, set.Duration = end.UTC(), end.Sub(start).Seconds()
	if err := catalog.PutSet(ctx, repo, set); err != nil {
		return nil, err
	}
	return set, nil
}

// settled discovers the topology, waiting (bounded) while slots migrate.
func settled(ctx context.Context, seed *redisurl.URL, o TakeOptions) (*cluster.Topology, *catalog.SetMigration, error) {
	start := time.Now()
	var mig *catalog.SetMigration
	for {
		topo, err := cluster.Discover(ctx, seed)
		if err != nil {
			return nil, nil, err
		}
		if topo.Uncovered > 0 {
			return nil, nil, fmt.Errorf("%d of %d slots are served by no node (is cluster_state ok?): a set would miss their keys", topo.Uncovered, cluster.Slots)
		}
		if len(topo.Migrations) == 0 {
			if mig != nil {
				mig.WaitedSeconds = time.Since(start).Seconds()
				mig.Outcome = "waited"
			}
			return topo, mig, nil
		}
		if mig == nil {
			mig = &catalog.SetMigration{}
			for _, m := range topo.Migrations {
				mig.Seen = append(mig.Seen, m.String())
			}
			if o.Log != nil {
				o.Log.Warn("slots are migrating: waiting for the resharding to end", "migrations", strings.Join(mig.Seen, ", "), "max_wait", o.MigrationWait)
			}
		}
		waited := time.Since(start)
		if waited >= o.MigrationWait {
			return nil, nil, &MigratingError{Migrations: topo.Migrations, Waited: waited}
		}
		t := time.NewTimer(o.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
}

func sameSlots(a, b *cluster.Topology) bool {
	if len(a.Shards) != len(b.Shards) {
		return false
	}
	for i := range a.Shards {
		if !slices.Equal(a.Shards[i].Slots, b.Shards[i].Slots) {
			return false
		}
	}
	return true
}

func rangesText(rs []cluster.Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}
