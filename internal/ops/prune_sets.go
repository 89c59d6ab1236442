package ops

import (
	"context"
	"errors"
	"fmt"

	"redback/internal/catalog"
	"redback/internal/clusterset"
	"redback/internal/storage"
)

// ClusterPruneOutcome is what PruneCluster did, or would do with DryRun.
type ClusterPruneOutcome struct {
	Cluster string `json:"cluster"`
	// Sets are the decisions about the cluster's backup sets, newest
	// first; a set is kept or dropped whole.
	Sets []catalog.Decision `json:"sets"`
	// DeletedSets lists the sets whose manifest was removed.
	DeletedSets []string `json:"deleted_sets"`
	// Shards is the prune of each shard's source, by source name.
	Shards map[string]*PruneOutcome `json:"shards"`
}

// PruneCluster applies retention to a cluster's backup sets as units, then
// to its shards' sources:
//
//  1. The policy's counts (hourly … monthly), within and keep marks decide
//     which sets stay, as catalog.Plan does for snapshots; a set is
//     verified when each of its shards' snapshots is there and verified.
//     The newest verified set always stays, so a set is only dropped when
//     a newer verified set covers it, and with no verified set nothing
//     is.
//  2. The manifests of the dropped sets are removed (the set disappears
//     before any of its data).
//  3. Each shard source is pruned (under its lease, given by lease) with
//     no counts of its own: it keeps the snapshots of the sets that stay,
//     its newest verified snapshot, what its log needs for the pitr
//     window (generation bases) and pins, shipPinned's included (nil:
//     none). The snapshots of dropped sets go, unless the log needs them.
//
// With p.DryRun nothing changes and lease is not used.
func PruneCluster(ctx context.Context, base storage.Backend, cluster string, lease ShardLease, p PruneParams, shipPinned func(source, id string) (bool, string)) (*ClusterPruneOutcome, error) {
	out := &ClusterPruneOutcome{Cluster: cluster, DeletedSets: []string{}, Shards: map[string]*PruneOutcome{}}
	sets, bad, err := catalog.ListSets(ctx, base, cluster)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		// A set that cannot be read could be the one that covers others.
		return nil, fmt.Errorf("cluster %s: %d set manifest(s) could not be read, nothing pruned (see redback verify): %w", cluster, len(bad), errors.Join(bad...))
	}
	repo, err := catalog.OpenRepository(ctx, base)
	if err != nil {
		return nil, err
	}
	view := func(source string) (storage.Backend, bool) {
		r, ok := repo.Source(source)
		if !ok {
			return nil, false
		}
		return r.Backend(base), true
	}
	standIns := make([]*catalog.Snapshot, len(sets))
	byID := map[string]*catalog.Set{}
	for i, s := range sets {
		v := true
		for _, sh := range s.Shards {
			b, ok := view(sh.Source)
			if !ok {
				v = false
				break
			}
			snap, err := catalog.ReadSnapshot(ctx, b, sh.Snapshot)
			if err != nil && !errors.Is(err, catalog.ErrNoSnapshot) {
				return nil, fmt.Errorf("cluster %s: set %s: shard %s: %w", cluster, s.ID, sh.Source, err)
			}
			v = v && err == nil && snap.Verified && snap.Digest == sh.Digest
		}
		standIns[i] = &catalog.Snapshot{ID: s.ID, EndTime: s.EndTime, Verified: v, Keep: s.Keep}
		byID[s.ID] = s
	}
	setPolicy := catalog.Policy{Hourly: p.Policy.Hourly, Daily: p.Policy.Daily, Weekly: p.Policy.Weekly, Monthly: p.Policy.Monthly, Within: p.Policy.Within}
	out.Sets = catalog.Plan(standIns, setPolicy, p.Now)
	kept := map[string]map[string]string{} // source -> snapshot -> set
	var errs []error
	for _, d := range out.Sets {
		s := byID[d.ID]
		if d.Keep {
			for _, sh := range s.Shards {
				if kept[sh.Source] == nil {
					kept[sh.Source] = map[string]string{}
				}
				kept[sh.Source][sh.Snapshot] = s.ID
			}
			continue
		}
		if !p.DryRun {
			if err := base.Delete(ctx, catalog.SetKey(cluster, s.ID)); err != nil && !errors.Is(err, storage.ErrNotExist) {
				errs = append(errs, fmt.Errorf("delete set %s manifest: %w", s.ID, err))
				// Its shards' snapshots stay while the set is visible.
				for _, sh := range s.Shards {
					if kept[sh.Source] == nil {
						kept[sh.Source] = map[string]string{}
					}
					kept[sh.Source][sh.Snapshot] = s.ID
				}
				continue
			}
		}
		out.DeletedSets = append(out.DeletedSets, s.ID)
	}
	shards, err := clusterset.ShardSources(ctx, base, cluster)
	if err != nil {
		return out, errors.Join(append(errs, err)...)
	}
	for _, src := range shards {
		sp := p
		sp.Policy = catalog.Policy{Hourly: 0, Daily: 0, Weekly: 0, Monthly: 0, PITR: p.Policy.PITR}
		sp.Policy.Pinned = func(id string) (bool, string) {
			if set, ok := kept[src][id]; ok {
				return true, "in backup set " + set + " (kept)"
			}
			if shipPinned != nil {
				return shipPinned(src, id)
			}
			return false, ""
		}
		run := func(ctx context.Context, repo storage.Backend) error {
			res, err := pruneSource(ctx, repo, sp)
			if res != nil {
				out.Shards[src] = res
			}
			return err
		}
		if p.DryRun {
			b, _ := view(src)
			err = run(ctx, b)
		} else {
			err = lease(ctx, src, run)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", src, err))
		}
	}
	return out, errors.Join(errs...)
}
