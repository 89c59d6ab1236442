package clusterset

import (
	"context"
	"errors"
	"fmt"

	"redback/internal/catalog"
	"redback/internal/cluster"
	"redback/internal/digest"
	"redback/internal/storage"
)

// Check proves a set's manifest against the snapshots it names, without
// reading their data (verify re-reads each shard's snapshot as part of its
// source): every shard's snapshot manifest exists and is verified with the
// digest and key count the set recorded, the shards' slots cover every
// slot once, and the union of the shards' digests is the set's digest. It
// returns the problems found (none: the set is whole).
func Check(ctx context.Context, repo storage.Backend, set *catalog.Set) ([]string, error) {
	var problems []string
	var digests []string
	covered := make([]int, cluster.Slots)
	for _, sh := range set.Shards {
		snap, err := catalog.ReadSnapshot(ctx, catalog.NamedSource(sh.Source).Backend(repo), sh.Snapshot)
		switch {
		case errors.Is(err, catalog.ErrNoSnapshot):
			problems = append(problems, fmt.Sprintf("shard %s: snapshot %s is missing", sh.Source, sh.Snapshot))
		case err != nil && errors.Is(err, storage.ErrNotExist):
			problems = append(problems, fmt.Sprintf("shard %s: snapshot %s is missing", sh.Source, sh.Snapshot))
		case err != nil:
			var me *catalog.ManifestError
			if !errors.As(err, &me) {
				return nil, err
			}
			problems = append(problems, fmt.Sprintf("shard %s: %v", sh.Source, err))
		case !snap.Verified:
			problems = append(problems, fmt.Sprintf("shard %s: snapshot %s is not verified", sh.Source, sh.Snapshot))
		case snap.Digest != sh.Digest || snap.Census.Keys != sh.Keys:
			problems = append(problems, fmt.Sprintf("shard %s: snapshot %s has digest %s and %d keys, the set recorded %s and %d",
				sh.Source, sh.Snapshot, snap.Digest, snap.Census.Keys, sh.Digest, sh.Keys))
		}
		digests = append(digests, sh.Digest)
		for _, r := range sh.Slots {
			for s := max(r[0], 0); s <= r[1] && s < cluster.Slots; s++ {
				covered[s]++
			}
		}
	}
	var missing, twice int
	for _, n := range covered {
		switch {
		case n == 0:
			missing++
		case n > 1:
			twice++
		}
	}
	if missing > 0 || twice > 0 {
		problems = append(problems, fmt.Sprintf("the shards' slots leave %d slots uncovered and cover %d slots more than once", missing, twice))
	}
	if u, err := digest.Union(digests...); err != nil {
		problems = append(problems, err.Error())
	} else if u != set.Digest {
		problems = append(problems, fmt.Sprintf("the union of the shards' digests is %s, the set says %s", u, set.Digest))
	}
	return problems, nil
}
