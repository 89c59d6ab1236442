package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"redback/internal/catalog"
	"redback/internal/cluster"
	"redback/internal/clusterset"
	"redback/internal/ops"
	"redback/internal/pack"
	"redback/internal/progress"
	"redback/internal/redisurl"
	"redback/internal/sentinel"
	"redback/internal/snapshot"
	"redback/internal/storage"
)

type snapshotOpts struct {
	source, repo, method string
	name                 string
	fromRDB              string
	json                 bool
	preferReplica        bool
	singleNode           bool
	parallel             int
	migrationWait        time.Duration
	redis                redisFlags
	pack                 packFlags
	log                  fromLogFlags
}

func newSnapshotCmd(e *env) *cobra.Command {
	o := &snapshotOpts{}
	c := &cobra.Command{
		Use:   "snapshot --source URL --repo URL [--name NAME] | --from-log --repo URL [--name NAME] [--at TIME | --to-offset N] | --from-rdb FILE|URL --repo URL --name NAME",
		Short: "Take a verified snapshot of a Redis server into a repository",
		Long: `Take a snapshot (RDB) of a Redis server, verify it while it streams (CRC-64,
full parse, key census, DEBUG DIGEST), compress it with zstd, optionally
encrypt it with age, and store it in the repository. The manifest that makes
the snapshot visible is written last and only when verification passed.

The snapshot belongs to the source --name of the repository (default: a
name from the server's host and port, printed); snapshot holds the source's
lease while it writes, so it is refused while another writer (an agent, ship)
writes to that source.

A node of a Redis Cluster (INFO cluster says cluster_enabled:1) means the
whole cluster: every shard is snapshotted (an online replica of each when
there is one, see --prefer-replica; --parallel shards at once) into a source
of its own (NAME-shard-FIRSTSLOT, NAME from --name), and a backup set
manifest naming them, written last, makes them one unit (see docs/cluster.md).
While slots migrate, snapshot waits up to --migration-wait, then refuses.
--single-node backs up the named node alone.

Methods:
  sync    (default) connect as a replica and receive the RDB over the
          replication protocol; works remotely, touches no disk on the server.
  bgsave  run BGSAVE and read the file from the server's dir; for an agent
          on the Redis host.

--from-log builds the snapshot without contacting the source: the newest
snapshot of the source's log generation (its base, or one synthesized
before) and the shipped segments after it are replayed into a scratch
redis-server on this host, which saves it; the RDB is verified like any
other snapshot and its digest proven against the scratch server's DEBUG
DIGEST. It is published in the same generation with method "log" and its
offset, so the source never forks for it (see docs/performance.md for its
cost here: CPU, memory about the dataset's size, time). Default point: the
newest durable point of the log. With --source too, a repository without a
usable log (no shipping, a gap, a generation without a base) falls back to
a normal snapshot of --source and says why.

--from-rdb imports an RDB file -- a local path, file:///..., or an object
s3://bucket/prefix/NAME, gs://bucket/prefix/NAME, azblob://container/prefix/NAME
with the store's usual parameters and credentials -- as a snapshot of
source --name (required), with method "rdb-file": the export of a managed
service that refuses replication (ElastiCache, MemoryDB, Memorystore,
Azure Cache; see docs/managed-services.md). It is verified like any other
snapshot while it streams (CRC-64, full parse, census, digest computed
offline); a damaged file stores nothing and exits 3. There is no server
to prove the digest against: a restore of it into a server that allows
DEBUG DIGEST, or a drill, proves it.`,
		Example: `  redback snapshot --source redis://127.0.0.1:6379 --repo file:///var/lib/redback/cache-a
  redback snapshot --from-log --repo file:///var/lib/redback/cache-a --name cache-a
  redback snapshot --source redis://10.0.0.5:6379 --repo 's3://bucket/redis?region=eu-west-1' --encrypt-to age1...
  redback snapshot --from-rdb 's3://exports/cache-a-0001.rdb?region=eu-west-1' --repo 's3://bucket/redis?region=eu-west-1' --name cache-a`,
		Args: exactArgs(0, "redback snapshot --source redis://127.0.0.1:6379 --repo file:///backups/redis"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSnapshot(cmd.Context(), e, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.source, "source", "", "server to snapshot: redis://[user:pass@]host:port[/db], rediss://..., unix:///path.sock, redis+sentinel://host:port[,host:port...]/MASTERNAME")
	f.StringVar(&o.repo, "repo", "", "repository: file:///path, a path, or s3://bucket/prefix?region=R&endpoint=URL")
	addNameFlag(f, &o.name, true)
	f.StringVar(&o.method, "method", "sync", "sync (replication protocol) or bgsave (BGSAVE + local file)")
	o.pack.addFlags(f, "fastest")
	f.BoolVar(&o.json, "json", false, "print the manifest as JSON")
	f.BoolVar(&o.preferReplica, "prefer-replica", true, "for a redis+sentinel:// source or a cluster's shards, read a healthy replica when there is one (else the primary)")
	f.BoolVar(&o.singleNode, "single-node", false, "for a cluster node: back up that node alone, not the whole cluster")
	f.IntVar(&o.parallel, "parallel", clusterset.DefaultParallel, "for a cluster: shards snapshotted at once")
	f.DurationVar(&o.migrationWait, "migration-wait", clusterset.DefaultMigrationWait, "for a cluster: how long to wait while slots migrate before refusing")
	f.StringVar(&o.fromRDB, "from-rdb", "", "import this RDB `FILE|URL` (a path, file:///..., s3://, gs:// or azblob:// object: a managed service's export) as a verified snapshot of --name")
	o.redis.addFlags(f)
	o.log.addFlags(f)
	return c
}

func runSnapshot(ctx context.Context, e *env, o *snapshotOpts) error {
	if o.fromRDB != "" {
		return runSnapshotFromRDB(ctx, e, o)
	}
	if o.log.FromLog {
		return runSnapshotFromLog(ctx, e, o)
	}
	if o.log.requested() {
		return usagef("redback snapshot --from-log --repo URL --at 2026-11-25T14:03:12Z", "--at, --to-offset, --redis-server, --scratch-dir and --identity go with --from-log")
	}
	if o.method != "sync" && o.method != "bgsave" {
		return usagef("--method sync", "--method must be sync or bgsave, not %q", o.method)
	}
	u, err := o.redis.parse(e, "source", o.source)
	if err != nil {
		return err
	}
	po, err := o.pack.options()
	if err != nil {
		return err
	}
	if !o.singleNode && !u.IsSentinel() && u.Network() == "tcp" {
		on, err := cluster.Enabled(ctx, u)
		if err != nil {
			return err
		}
		if on {
			return runClusterSnapshot(ctx, e, o, u, po)
		}
	}
	if u.IsSentinel() {
		// Sentinels that cannot be asked fail the snapshot before the
		// repository records a source (as a node that cannot be reached
		// does, above).
		if _, err := sentinel.Resolve(ctx, u, sentinel.Options{}); err != nil {
			return err
		}
	}
	base, view, src, err := openWriter(ctx, e, o.repo, o.name, u.Redacted())
	if err != nil {
		return err
	}
	defer base.Close()
	bar := progress.New(e.Err, "snapshot", -1, !o.json && progress.IsTerminal(e.Err))
	var snap *catalog.Snapshot
	err = leased(ctx, e, view, src.Name, func(ctx context.Context, repo storage.Backend) error {
		snap, err = takeSnapshot(ctx, e, u, snapshotParams{
			Method:        o.method,
			PreferReplica: o.preferReplica,
			Store:         snapshot.Options{Backend: repo, Pack: po, Progress: bar, Log: e.log},
		})
		return err
	})
	bar.Done()
	if err != nil {
		return err
	}
	return printSnapshot(e, o.json, snap, snap)
}

// printSnapshot prints v (with --json) or snap's summary line.
func printSnapshot(e *env, asJSON bool, v any, snap *catalog.Snapshot) error {
	if asJSON {
		return printJSON(e, v)
	}
	ratio := 0.0
	if snap.Object.StoredBytes > 0 {
		ratio = float64(snap.Object.RawBytes) / float64(snap.Object.StoredBytes)
	}
	fmt.Fprintf(e.Out, "snapshot %s: %d keys, %s -> %s stored (%.2fx), digest %s, %.1fs\n",
		snap.ID, snap.Census.Keys, humanBytes(snap.Object.RawBytes), humanBytes(snap.Object.StoredBytes),
		ratio, snap.Digest, snap.Duration)
	return nil
}

// snapshotParams is what takeSnapshot needs besides the source.
type snapshotParams = ops.SnapshotParams

// takeSnapshot is ops.TakeSnapshot with a bgsave on the wrong host made a
// usage error.
func takeSnapshot(ctx context.Context, e *env, u *redisurl.URL, p snapshotParams) (*catalog.Snapshot, error) {
	snap, err := ops.TakeSnapshot(ctx, e.log, u, p)
	if errors.Is(err, snapshot.ErrNotLocal) {
		return nil, usagef("redback snapshot --method sync --source "+u.Redacted()+" ...", "%v; run redback on that host or use --method sync", err)
	}
	return snap, err
}

// humanBytes formats a byte count for people.
func humanBytes(n int64) string { return progress.HumanBytes(n) }

// runClusterSnapshot backs up every shard of the cluster u belongs to as
// one backup set.
func runClusterSnapshot(ctx context.Context, e *env, o *snapshotOpts, u *redisurl.URL, po pack.Options) error {
	name, err := clusterName(e, o.name, u)
	if err != nil {
		return err
	}
	base, err := openRepo(ctx, e, o.repo)
	if err != nil {
		return err
	}
	defer base.Close()
	set, err := ops.TakeSet(ctx, e.log, base, u, ops.LeasedShards(base, u, e.log), snapshotParams{Method: o.method, Store: snapshot.Options{Pack: po}},
		clusterset.TakeOptions{Cluster: name, PreferReplica: o.preferReplica, Parallel: o.parallel, MigrationWait: o.migrationWait, Log: e.log})
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(e, set)
	}
	fmt.Fprintf(e.Out, "set %s of cluster %s: %d shards, %d keys, union digest %s, %.1fs\n",
		set.ID, set.Cluster, len(set.Shards), set.Keys, set.Digest, set.Duration)
	for _, sh := range set.Shards {
		fmt.Fprintf(e.Out, "  %s: snapshot %s, slots %s, %d keys, %s %s (offset %d)\n",
			sh.Source, sh.Snapshot, slotsText(sh.Slots), sh.Keys, sh.Role, sh.NodeAddress, sh.Offset)
	}
	if set.Migration != nil {
		fmt.Fprintf(e.Out, "  waited %.1fs for migrating slots: %s\n", set.Migration.WaitedSeconds, strings.Join(set.Migration.Seen, ", "))
	}
	return nil
}

// clusterName is --name, else a name from the seed node's address
// (printed), checked as a cluster's name.
func clusterName(e *env, name string, u *redisurl.URL) (string, error) {
	if name == "" {
		name = catalog.NameFromAddress(u.Redacted())
		fmt.Fprintf(e.Err, "cluster name: %s (from %s; set another with --name)\n", name, u.Redacted())
	}
	if err := catalog.ValidSourceName(name); err != nil || len(name) > 52 {
		return "", usagef("--name cache", "--name: a cluster's name must be a valid source name of at most 52 characters (its shards are NAME-shard-NNNNN)")
	}
	return name, nil
}

// slotsText is "0-5460,6000".
func slotsText(rs [][2]int) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = cluster.Range(r).String()
	}
	return strings.Join(s, ",")
}
