package clusterset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"redback/internal/catalog"
	"redback/internal/cluster"
	"redback/internal/redisurl"
	"redback/internal/storage"
)

// DefaultShipPoll is how often Shipping reads the cluster's topology.
const DefaultShipPoll = 2 * time.Second

// FollowFunc names the node a shard's stream is read from now: its primary.
type FollowFunc func(ctx context.Context) (*redisurl.URL, error)

// ShipShardFunc ships one shard into the repository source until ctx ends
// (see ship.Shipper.Follow); an error ends the whole Shipping.
type ShipShardFunc func(ctx context.Context, source string, follow FollowFunc) error

// ShardState is what Shipping knows of one shard.
type ShardState struct {
	Source  string   `json:"source"`
	Primary string   `json:"primary_address"`
	Slots   [][2]int `json:"slots"`
}

// Shipping ships every shard of a cluster: one stream per shard, each
// from the shard's current primary (a failover inside a shard continues
// on the promoted replica), a new shard (a node given slots) gets its own,
// and each change of the slot map is recorded with its time
// (catalog.SlotMap). Set the fields, then call Run.
type Shipping struct {
	Repo    storage.Backend // the repository (not a source's view)
	Seed    *redisurl.URL   // any node; its credentials and TLS reach every node
	Cluster string
	Ship    ShipShardFunc
	Poll    time.Duration // DefaultShipPoll when 0
	Log     *slog.Logger

	mu     sync.Mutex
	shards []*tracked
	addrs  []string // nodes last seen, to discover from when the seed is down
	last   string   // the slot map last recorded
}

type tracked struct {
	ShardState
	primaryID string
	ids       map[string]bool // node ids seen in the shard
}

// Shards returns the shards being shipped, by source name.
func (s *Shipping) Shards() []ShardState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ShardState, len(s.shards))
	for i, t := range s.shards {
		out[i] = t.ShardState
		out[i].Slots = slices.Clone(t.Slots)
	}
	slices.SortFunc(out, func(a, b ShardState) int {
		switch {
		case a.Source < b.Source:
			return -1
		case a.Source > b.Source:
			return 1
		}
		return 0
	})
	return out
}

// Run ships until ctx ends (nil) or a shard's Ship fails.
func (s *Shipping) Run(ctx context.Context) error {
	if s.Poll <= 0 {
		s.Poll = DefaultShipPoll
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	topo, err := s.discover(ctx)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range s.update(gctx, topo) {
		g.Go(func() error { return s.ship(gctx, t) })
	}
	g.Go(func() error {
		tick := time.NewTicker(s.Poll)
		defer tick.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-tick.C:
			}
			topo, err := s.discover(gctx)
			if err != nil {
				if gctx.Err() == nil {
					s.Log.Warn("cluster topology not readable; the shards' streams go on", "err", err)
				}
				continue
			}
			for _, t := range s.update(gctx, topo) {
				g.Go(func() error { return s.ship(gctx, t) })
			}
		}
	})
	return g.Wait()
}

func (s *Shipping) ship(ctx context.Context, t *tracked) error {
	follow := func(ctx context.Context) (*redisurl.URL, error) {
		s.mu.Lock()
		addr := t.Primary
		s.mu.Unlock()
		return s.Seed.Node(addr), nil
	}
	if err := s.Ship(ctx, t.Source, follow); err != nil && ctx.Err() == nil {
		return fmt.Errorf("shard %s: %w", t.Source, err)
	}
	return nil
}

// discover reads the shards from the seed, else from any node seen last.
func (s *Shipping) discover(ctx context.Context) (*cluster.Topology, error) {
	s.mu.Lock()
	addrs := append([]string{s.Seed.Addr}, s.addrs...)
	s.mu.Unlock()
	var errs []error
	for _, a := range addrs {
		topo, err := cluster.DiscoverShards(ctx, s.Seed.Node(a))
		if err == nil {
			return topo, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// update applies topo: shards are matched to the tracked ones by node id
// (a promoted replica belongs to its shard); a shard serving slots that
// matches none is new and returned, to be shipped. A changed slot map is
// recorded.
func (s *Shipping) update(ctx context.Context, topo *cluster.Topology) []*tracked {
	s.mu.Lock()
	var added []*tracked
	s.addrs = s.addrs[:0]
	for _, sh := range topo.Shards {
		nodes := append([]cluster.Node{sh.Primary}, sh.Replicas...)
		for _, n := range nodes {
			s.addrs = append(s.addrs, n.Addr)
		}
		if len(sh.Slots) == 0 {
			continue
		}
		var t *tracked
		for _, x := range s.shards {
			for _, n := range nodes {
				if x.ids[n.ID] {
					t = x
				}
			}
		}
		if t == nil {
			name := catalog.ShardSourceName(s.Cluster, sh.FirstSlot())
			if slices.ContainsFunc(s.shards, func(x *tracked) bool { return x.Source == name }) {
				s.Log.Warn("a new shard's source name is taken by another shard; not shipped", "source", name, "primary", sh.Primary.Addr)
				continue
			}
			t = &tracked{ShardState: ShardState{Source: name}, ids: map[string]bool{}}
			s.shards = append(s.shards, t)
			added = append(added, t)
			s.Log.Info("shipping a shard", "source", name, "primary", sh.Primary.Addr, "slots", rangesText(sh.Slots))
		}
		for _, n := range nodes {
			t.ids[n.ID] = true
		}
		if t.Primary != "" && t.Primary != sh.Primary.Addr {
			s.Log.Info("a shard has a new primary", "source", t.Source, "primary", sh.Primary.Addr, "was", t.Primary)
		}
		t.Primary, t.primaryID = sh.Primary.Addr, sh.Primary.ID
		t.Slots = t.Slots[:0]
		for _, r := range sh.Slots {
			t.Slots = append(t.Slots, [2]int(r))
		}
	}
	// Shards that serve no slot any more keep their stream but no slots.
	for _, t := range s.shards {
		if !slices.ContainsFunc(topo.Shards, func(sh cluster.Shard) bool { return len(sh.Slots) > 0 && t.ids[sh.Primary.ID] }) {
			t.Slots = nil
		}
	}
	m := &catalog.SlotMap{Format: catalog.FormatVersion, Cluster: s.Cluster}
	for _, t := range s.shards {
		m.Shards = append(m.Shards, catalog.SlotMapShard{Source: t.Source, Primary: t.primaryID, PrimaryAddress: t.Primary, Slots: append([][2]int{}, t.Slots...)})
	}
	slices.SortFunc(m.Shards, func(a, b catalog.SlotMapShard) int {
		switch {
		case a.Source < b.Source:
			return -1
		case a.Source > b.Source:
			return 1
		}
		return 0
	})
	key := fmt.Sprint(slotsOnly(m.Shards))
	changed := key != s.last && topo.Uncovered == 0 // a map with holes is a moment of a failover
	if changed {
		s.last = key
	}
	s.mu.Unlock()
	if changed {
		now := time.Now()
		m.ID, m.Time = catalog.NewSnapshotID(now), now.UTC()
		if err := catalog.PutSlotMap(ctx, s.Repo, m); err != nil {
			s.Log.Warn("could not record the cluster's slot map", "err", err)
			s.mu.Lock()
			s.last = "" // try again at the next poll
			s.mu.Unlock()
		} else {
			s.Log.Info("recorded the cluster's slot map", "id", m.ID, "shards", len(m.Shards))
		}
	}
	return added
}

// slotsOnly is the part of a slot map that a change is about (a new
// primary of the same slots is a failover, not a resharding).
func slotsOnly(sh []catalog.SlotMapShard) [][]any {
	out := make([][]any, len(sh))
	for i, x := range sh {
		out[i] = []any{x.Source, x.Slots}
	}
	return out
}

// ShardNames are the source names of the shards of the cluster called
// name that serve slots now, as Take and Shipping name them, read from
// seed's node.
func ShardNames(ctx context.Context, seed *redisurl.URL, name string) ([]string, error) {
	topo, err := cluster.DiscoverShards(ctx, seed)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sh := range topo.Shards {
		if len(sh.Slots) > 0 {
			out = append(out, catalog.ShardSourceName(name, sh.FirstSlot()))
		}
	}
	return out, nil
}
