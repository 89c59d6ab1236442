package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"redback/internal/catalog"
	"redback/internal/repocopy"
	"redback/internal/storage"
)

// CopyCluster copies a cluster's backup sets from the repository from to
// the repository to, so that a set is visible there only whole: first
// every shard source of the cluster and its slot maps (repocopy.Copy:
// data, then the manifests that commit it), then the manifest of each set
// that to lacks, only once each of its shards' snapshot manifests is on
// to (the set manifest last, as when it was taken). A set whose shards
// are not all there (held by damage, pruned meanwhile) is left out and
// listed in the result's Held as its manifest key. The result counts the
// set manifests written. log gets a line per set left out.
func CopyCluster(ctx context.Context, from, to storage.Backend, cluster string, log *slog.Logger) (*repocopy.Result, error) {
	repo, err := catalog.OpenRepository(ctx, from)
	if err != nil {
		return nil, err
	}
	var shards []catalog.SourceRef
	for _, n := range repo.Names() {
		if strings.HasPrefix(n, cluster+"-shard-") {
			r, _ := repo.Source(n)
			shards = append(shards, r)
		}
	}
	slotmaps := catalog.SetPrefix + cluster + "/slotmaps/"
	include := func(key string) bool {
		if strings.HasPrefix(key, slotmaps) {
			return true
		}
		return slices.ContainsFunc(shards, func(r catalog.SourceRef) bool { return r.Holds(key) })
	}
	if len(shards) == 0 {
		return &repocopy.Result{}, nil // nothing taken or shipped yet
	}
	res, err := repocopy.Copy(ctx, from, to, repocopy.Options{Include: include})
	var damage *repocopy.DamageError
	if err != nil && !errors.As(err, &damage) {
		return res, err
	}
	sets, bad, lerr := catalog.ListSets(ctx, from, cluster)
	if lerr != nil {
		return res, errors.Join(err, lerr)
	}
	for _, b := range bad {
		log.Warn("a set manifest that cannot be read is not copied", "cluster", cluster, "err", b)
	}
	have, _, lerr := catalog.ListSets(ctx, to, cluster)
	if lerr != nil && !errors.Is(lerr, catalog.ErrNoRepository) {
		return res, errors.Join(err, lerr)
	}
	there := map[string]bool{}
	for _, s := range have {
		there[s.ID] = true
	}
	for _, s := range slices.Backward(sets) { // oldest first
		if there[s.ID] {
			res.Present++
			continue
		}
		whole, why, serr := setOn(ctx, to, s)
		if serr != nil {
			return res, errors.Join(err, serr)
		}
		if !whole {
			log.Warn("a set is not copied while its shards are not all on the target", "cluster", cluster, "set", s.ID, "why", why)
			res.Held = append(res.Held, catalog.SetKey(cluster, s.ID))
			continue
		}
		if perr := catalog.PutSet(ctx, to, s); perr != nil {
			return res, errors.Join(err, fmt.Errorf("copy set %s: %w", s.ID, perr))
		}
		res.Copied++
		res.Newest = later(res.Newest, s.EndTime)
	}
	return res, err
}

// setOn says whether every shard snapshot of s is on the repository to.
func setOn(ctx context.Context, to storage.Backend, s *catalog.Set) (bool, string, error) {
	repo, err := catalog.OpenRepository(ctx, to)
	if errors.Is(err, catalog.ErrNoRepository) {
		return false, "the target holds no repository yet", nil
	}
	if err != nil {
		return false, "", err
	}
	for _, sh := range s.Shards {
		r, ok := repo.Source(sh.Source)
		if !ok {
			return false, "no source " + sh.Source, nil
		}
		_, err := catalog.ReadSnapshot(ctx, r.Backend(to), sh.Snapshot)
		if errors.Is(err, catalog.ErrNoSnapshot) {
			return false, "no snapshot " + sh.Source + "/" + sh.Snapshot, nil
		}
		if err != nil {
			return false, "", fmt.Errorf("set %s: shard %s: %w", s.ID, sh.Source, err)
		}
	}
	return true, "", nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
