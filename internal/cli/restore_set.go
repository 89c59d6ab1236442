package cli

import (
	"context"

	"filippo.io/age"
	"fmt"
	"strings"
	"time"

	"redback/internal/catalog"
	"redback/internal/clusterset"
	"redback/internal/ops"
	"redback/internal/pitr"
	"redback/internal/progress"
	"redback/internal/restore"
	"redback/internal/storage"
)

// findSet says whether the restore asks for a backup set: --snapshot names
// a set, --name names a cluster with sets, or (neither given) every source
// of the repository is a shard of the one cluster it holds sets of. It
// returns nil when the restore is of a single source.
func (o *restoreOpts) findSet(ctx context.Context, e *env) (*catalog.Set, storage.Backend, error) {
	if o.repo == "" {
		return nil, nil, nil
	}
	base, err := openRepo(ctx, e, o.repo)
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
	case o.snapshot != "":
		for _, s := range sets {
			if s.ID == o.snapshot && (o.name == "" || o.name == s.Cluster) {
				pick = s
				break
			}
		}
	case o.name != "":
		for _, s := range sets {
			if s.Cluster == o.name {
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
func (o *restoreOpts) runSet(ctx context.Context, e *env, set *catalog.Set, base storage.Backend, ro restore.Options) error {
	defer base.Close()
	if !ro.Filter.IsZero() {
		return usagef("redback restore --repo "+o.repo+" --name "+set.Cluster+" --to-redis URL", "--match, --db and --map-db do not apply to a backup set yet")
	}
	ids, err := loadIdentities(e, o.identity, "redback restore --repo URL --name CLUSTER --identity key.txt ...")
	if err != nil {
		return err
	}
	if o.toRedis == "" {
		return o.runSetToFiles(ctx, e, set, base, ro, ids)
	}
	u, err := o.redis.parse(e, "to-redis", o.toRedis)
	if err != nil {
		return err
	}
	bar := progress.New(e.Err, "restore", -1, !o.json && progress.IsTerminal(e.Err))
	ro.Progress = func(bytes, keys int64) { bar.Add(bytes, keys) }
	start := time.Now()
	r, rerr := ops.Restore(ctx, base, ops.SetPoint(set), ops.Destination{Redis: u}, ops.RestoreParams{Options: ro, Identities: ids, Log: e.log})
	bar.Done()
	res := r.Set
	dur := time.Since(start).Seconds()
	rerr = keysFailed(&res.Result, "restored", rerr)
	if o.json {
		j := setRestoreJSON{Set: set.ID, Cluster: set.Cluster, Digest: set.Digest, Order: clusterset.SetOrder(set), SpreadSeconds: set.Duration,
			Target: u.Redacted(), TargetCluster: res.Cluster,
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
	fmt.Fprintf(e.Err, "note: %s\n", clusterset.SetOrder(set))
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
	Order         string                    `json:"order"`
	SpreadSeconds float64                   `json:"spread_seconds"` // the shards were cut within this many seconds
	Target        string                    `json:"target"`
	TargetCluster bool                      `json:"target_cluster"`
	Targets       []clusterset.TargetResult `json:"targets"`
	Resent        int64                     `json:"keys_resent"`
	Rounds        int                       `json:"resend_rounds"`
	keysJSON
	Error string `json:"error,omitempty"`
}

// shippedCluster returns --name when it names a cluster whose shards were
// shipped or backed up (sources NAME-shard-N) rather than a source.
func (o *restoreOpts) shippedCluster(ctx context.Context, e *env) (string, error) {
	if o.repo == "" || o.name == "" {
		return "", nil
	}
	base, err := openRepo(ctx, e, o.repo)
	if err != nil {
		return "", err
	}
	defer base.Close()
	repo, err := catalog.OpenRepository(ctx, base)
	if err != nil {
		return "", err
	}
	if _, ok := repo.Source(o.name); ok {
		return "", nil
	}
	names, err := clusterset.ShardSources(ctx, base, o.name)
	if err != nil || len(names) == 0 {
		return "", err
	}
	return o.name, nil
}

// runSetPITR restores the shipped shards of cluster at a point in time
// into the server or cluster at --to-redis.
func runSetPITR(ctx context.Context, e *env, o *restoreOpts, cl string) error {
	try := "redback restore --repo " + o.repo + " --name " + cl + " --before-command FLUSHALL --to-redis redis://node-of-the-target-cluster:6379"
	tg, err := o.pitr.target()
	if err != nil {
		return err
	}
	if o.toRedis == "" {
		return usagef(try, "a point in time of cluster %s restores into a server or a cluster (--to-redis); --to-dir and --to-rdb of a cluster are not supported yet", cl)
	}
	if o.fromRDB != "" || o.snapshot != "" || o.latest {
		return usagef(try, "a point-in-time restore picks its base snapshots itself: drop --from-rdb, --snapshot and --latest")
	}
	if len(tg.Skip) > 0 || tg.Kind == pitr.KindOffset || tg.Generation != "" {
		return usagef(try, "--to-offset, --generation and --skip-command-at name one shard's log: restore that shard alone with --name %s-shard-N", cl)
	}
	ro, err := o.validate()
	if err != nil {
		return err
	}
	if !ro.Filter.IsZero() {
		return usagef(try, "--match, --db and --map-db do not apply to a cluster's point in time")
	}
	u, err := o.redis.parse(e, "to-redis", o.toRedis)
	if err != nil {
		return err
	}
	ids, err := loadIdentities(e, o.identity, "redback restore --repo URL --name CLUSTER --identity key.txt ...")
	if err != nil {
		return err
	}
	base, err := openRepo(ctx, e, o.repo)
	if err != nil {
		return err
	}
	defer base.Close()
	bar := progress.New(e.Err, "restore", -1, !o.json && progress.IsTerminal(e.Err))
	ro.Progress = func(bytes, keys int64) { bar.Add(bytes, keys) }
	start := time.Now()
	r, rerr := ops.Restore(ctx, base, ops.ClusterPoint(cl, tg), ops.Destination{Redis: u},
		ops.RestoreParams{Options: ro, Identities: ids, Log: e.log, RedisServer: o.pitr.RedisServer})
	bar.Done()
	res := r.Cluster
	dur := time.Since(start).Seconds()
	rerr = keysFailed(res.Result(), "restored", rerr)
	if o.json {
		j := setPointJSON{Cluster: cl, Target: tg.String(), Destination: u.Redacted(), TargetCluster: res.Cluster,
			Shards: res.Shards, SpreadSeconds: res.SpreadSeconds, Order: noGlobalOrder,
			Targets: res.Targets, Resent: res.Resent, keysJSON: newKeysJSON(res.Result(), dur)}
		if rerr != nil {
			j.Error = rerr.Error()
		}
		return writeJSONResult(e, j, rerr)
	}
	for _, sh := range res.Shards {
		if sh.Match != nil {
			fmt.Fprintf(e.Out, "%s: just before %s at %s (offset %d, generation %s)\n", sh.Source, pitr.Display(sh.Match.Args, 64, 8), fmtWindowTime(sh.Match.Time), sh.Match.Offset, sh.Generation)
		} else {
			fmt.Fprintf(e.Out, "%s: offset %d, last command received %s (generation %s)\n", sh.Source, sh.Offset, fmtWindowTime(sh.Time), sh.Generation)
		}
		for _, n := range sh.Notes {
			fmt.Fprintf(e.Err, "note: %s: %s\n", sh.Source, n)
		}
	}
	fmt.Fprintf(e.Err, "note: %s; these cuts are %.3fs apart\n", noGlobalOrder, res.SpreadSeconds)
	printKeyFailures(e, res.Result())
	if rerr != nil && res.KeysRestored == 0 {
		return rerr
	}
	fmt.Fprintf(e.Out, "restored cluster %s at %s (%d shards) to %s: %d keys restored, %d expired, %d failed; %d keys written again after redirects; %.1fs\n",
		cl, tg.String(), len(res.Shards), u.Redacted(), res.KeysRestored, res.KeysExpired, res.KeysFailed, res.Resent, dur)
	return rerr
}

// noGlobalOrder is said with every point in time of a cluster.
const noGlobalOrder = "a cluster has no global order: each shard is cut by its own log's receive times, so the cuts may be apart by the shards' clock skew plus the shipping interval"

// setPointJSON is the --json output of a cluster's point-in-time restore.
type setPointJSON struct {
	Cluster       string                    `json:"cluster"`
	Target        string                    `json:"target"`
	Destination   string                    `json:"destination"`
	TargetCluster bool                      `json:"target_cluster"`
	Shards        []clusterset.PointShard   `json:"shards"`
	SpreadSeconds float64                   `json:"spread_seconds"`
	Order         string                    `json:"order"`
	Targets       []clusterset.TargetResult `json:"targets"`
	Resent        int64                     `json:"keys_resent"`
	keysJSON
	Error string `json:"error,omitempty"`
}

// runSetToFiles writes a backup set as data dirs under --to-dir (one
// per source shard, or per primary of --slots-from) or as one RDB file
// (--to-rdb).
func (o *restoreOpts) runSetToFiles(ctx context.Context, e *env, set *catalog.Set, base storage.Backend, ro restore.Options, ids []age.Identity) error {
	dst := ops.Destination{Dir: o.toDir, RDB: o.toRDB}
	if o.slotsFrom != "" {
		u, err := o.redis.parse(e, "slots-from", o.slotsFrom)
		if err != nil {
			return err
		}
		dst.SlotsFrom = u
	}
	start := time.Now()
	r, rerr := ops.Restore(ctx, base, ops.SetPoint(set), dst, ops.RestoreParams{Options: ro, Identities: ids, Log: e.log})
	dur := time.Since(start).Seconds()
	if o.json {
		j := setFilesJSON{Set: set.ID, Cluster: set.Cluster, Digest: set.Digest, Order: clusterset.SetOrder(set), Spread: set.Duration, Seconds: dur}
		if r != nil {
			j.Dirs = r.SetDirs
			if f := r.SetFiles; f != nil {
				j.Files, j.FilesDigest, j.Keys, j.Expired, j.Notes = f.Files, f.Digest, f.Keys, f.Expired, f.Notes
			}
		}
		if rerr != nil {
			j.Error = rerr.Error()
		}
		return writeJSONResult(e, j, rerr)
	}
	if r == nil {
		return rerr
	}
	for _, d := range r.SetDirs {
		fmt.Fprintf(e.Out, "%s: %s/dump.rdb (slots %s, %d keys, digest %s)\n", d.Source, d.Dir, slotsText(d.Slots), d.KeysRestored, d.Digest)
	}
	if f := r.SetFiles; f != nil {
		for _, n := range f.Notes {
			fmt.Fprintf(e.Err, "note: %s\n", n)
		}
		for _, x := range f.Files {
			if x.Node != "" {
				fmt.Fprintf(e.Out, "%s (node %s, slots %s): %d keys, digest %s\n", x.Path, x.Node, slotsText(x.Slots), x.Keys, x.Digest)
			}
		}
	}
	if rerr != nil {
		return rerr
	}
	fmt.Fprintf(e.Err, "note: %s\n", clusterset.SetOrder(set))
	switch {
	case r.SetFiles != nil && dst.SlotsFrom != nil:
		fmt.Fprintf(e.Out, "wrote set %s of cluster %s as %d data dirs under %s, one per primary of %s (put each dump.rdb in that node's data dir, keep its nodes.conf, start it): %d keys (%d already expired); union digest %s (the set's)\n",
			set.ID, set.Cluster, len(r.SetFiles.Files), o.toDir, dst.SlotsFrom.Redacted(), r.SetFiles.Keys, r.SetFiles.Expired, r.SetFiles.Digest)
	case r.SetFiles != nil:
		fmt.Fprintf(e.Out, "wrote set %s of cluster %s (%d shards) as %s: %d keys in db 0 (%d already expired); digest %s (the set's)\n",
			set.ID, set.Cluster, len(set.Shards), o.toRDB, r.SetFiles.Keys, r.SetFiles.Expired, r.SetFiles.Digest)
	default:
		fmt.Fprintf(e.Out, "wrote set %s of cluster %s as %d data dirs under %s (one per shard; start each with redis-server --cluster-enabled yes --dir DIR); union digest %s\n",
			set.ID, set.Cluster, len(r.SetDirs), o.toDir, set.Digest)
	}
	return nil
}

// setFilesJSON is the --json output of a set written to dirs or a file.
type setFilesJSON struct {
	Set         string                  `json:"set"`
	Cluster     string                  `json:"cluster"`
	Digest      string                  `json:"digest"`
	Order       string                  `json:"order"`
	Spread      float64                 `json:"spread_seconds"` // the shards were cut within this many seconds
	Dirs        []clusterset.DirResult  `json:"dirs,omitempty"`
	Files       []clusterset.FileResult `json:"files,omitempty"`
	FilesDigest string                  `json:"files_digest,omitempty"`
	Keys        int64                   `json:"keys,omitempty"`
	Expired     int64                   `json:"keys_expired,omitempty"`
	Notes       []string                `json:"notes,omitempty"`
	Seconds     float64                 `json:"duration_seconds"`
	Error       string                  `json:"error,omitempty"`
}
