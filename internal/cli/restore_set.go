package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"redback/internal/catalog"
	"redback/internal/clusterset"
	"redback/internal/pack"
	"redback/internal/progress"
	"redback/internal/restore"
	"redback/internal/storage"
)

// findSet says whether the restore asks for a backup set: --snapshot names
// a set, --name names a cluster with sets, or (neither given) every source
// of the repository is a shard of the one cluster it holds sets of. It
// returns nil when the restore is of a single source.
func (o *restoreOptions) findSet(ctx context.Context, e *env) (*catalog.Set, storage.Backend, error) {
	if o.Repo == "" {
		return nil, nil, nil
	}
	base, err := openRepo(ctx, e, o.Repo)
	if err != nil {
		return nil, nil, err
	}
	sets, _, err := catalog.ListSets(ctx, base, "")
	if err != nil || len(sets) == 0 {
		base.Close()
		return nil, nil, err
	}
	var pick *catalog.Set
	switch {
	case o.Snapshot != "":
		for _, s := range sets {
			if s.ID == o.Snapshot && (o.Name == "" || o.Name == s.Cluster) {
				pick = s
				break
			}
		}
	case o.Name != "":
		for _, s := range sets {
			if s.Cluster == o.Name {
				pick = s
				break
			}
		}
	default:
		repo, err := catalog.OpenRepository(ctx, base)
		if err != nil {
			base.Close()
			return nil, nil, err
		}
		cl := sets[0].Cluster
		only := true
		for _, s := range sets {
			only = only && s.Cluster == cl
		}
		for _, n := range repo.Names() {
			only = only && strings.HasPrefix(n, cl+"-shard-")
		}
		if only {
			pick = sets[0]
		}
	}
	if pick == nil {
		base.Close()
		return nil, nil, nil
	}
	return pick, base, nil
}

// runSet restores a backup set into the server or cluster at --to-redis.
func (o *restoreOptions) runSet(ctx context.Context, e *env, set *catalog.Set, base storage.Backend, ro restore.Options) error {
	defer base.Close()
	if o.ToRedis == "" {
		return usagef("redback restore --repo "+o.Repo+" --name "+set.Cluster+" --to-redis redis://node-of-the-target-cluster:6379",
			"a backup set (cluster %s) restores into a server or a cluster (--to-redis); --to-dir and --to-rdb of a set are not supported yet", set.Cluster)
	}
	if !ro.Filter.IsZero() {
		return usagef("redback restore --repo "+o.Repo+" --name "+set.Cluster+" --to-redis URL", "--match, --db and --map-db do not apply to a backup set yet")
	}
	u, err := o.redis.parse(e, "to-redis", o.ToRedis)
	if err != nil {
		return err
	}
	ids, err := pack.LoadIdentities(o.Identity, e.getenv)
	if err != nil {
		return err
	}
	bar := progress.New(e.Err, "restore", -1, !o.JSON && progress.IsTerminal(e.Err))
	ro.Progress = func(bytes, keys int64) { bar.Add(bytes, keys) }
	start := time.Now()
	res, rerr := clusterset.Restore(ctx, base, set, u, clusterset.RestoreOptions{Restore: ro, Identities: ids, Log: e.log})
	bar.Done()
	dur := time.Since(start).Seconds()
	rerr = keysFailed(&res.Result, "restored", rerr)
	if o.JSON {
		j := setRestoreJSON{Set: set.ID, Cluster: set.Cluster, Digest: set.Digest, Target: u.Redacted(), TargetCluster: res.Cluster,
			Targets: res.Targets, Resent: res.Resent, Rounds: res.Rounds, keysJSON: newKeysJSON(&res.Result, dur)}
		if rerr != nil {
			j.Error = rerr.Error()
		}
		return writeJSONResult(e, j, rerr)
	}
	printKeyFailures(e, &res.Result)
	if rerr != nil && res.KeysRestored == 0 {
		return rerr
	}
	kind := "standalone server"
	if res.Cluster {
		kind = fmt.Sprintf("cluster of %d primaries", len(res.Targets))
	}
	rate := 0.0
	if dur > 0 {
		rate = float64(res.KeysRestored) / dur
	}
	fmt.Fprintf(e.Out, "restored set %s of cluster %s (%d shards) to %s (%s): %d keys restored, %d skipped (conflict), %d expired, %d failed; %d keys written again after redirects; %.1fs (%.0f keys/s); set digest %s\n",
		set.ID, set.Cluster, len(set.Shards), u.Redacted(), kind, res.KeysRestored, res.KeysSkipped, res.KeysExpired, res.KeysFailed, res.Resent, dur, rate, set.Digest)
	for _, t := range res.Targets {
		fmt.Fprintf(e.Out, "  %s: %d slots, %d keys\n", t.Addr, t.Slots, t.KeysRestored)
	}
	return rerr
}

// setRestoreJSON is the --json output of a set restore.
type setRestoreJSON struct {
	Set           string                    `json:"set"`
	Cluster       string                    `json:"cluster"`
	Digest        string                    `json:"digest"`
	Target        string                    `json:"target"`
	TargetCluster bool                      `json:"target_cluster"`
	Targets       []clusterset.TargetResult `json:"targets"`
	Resent        int64                     `json:"keys_resent"`
	Rounds        int                       `json:"resend_rounds"`
	keysJSON
	Error string `json:"error,omitempty"`
}

// errSetPITR refuses a point in time of a set (not built yet).
var errSetPITR = errors.New("a point in time of a backup set (--at, --before-command) is not supported yet: restore a set with --latest or --snapshot SET")
