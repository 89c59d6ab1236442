package cli

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"redback/internal/clusterset"
	"redback/internal/ops"
	"redback/internal/progress"
	"redback/internal/restore"
	"redback/internal/storage"
)

// restoreOpts are the flags of `redback restore`.
type restoreOpts struct {
	repo     string
	name     string
	latest   bool
	snapshot string
	fromRDB  string
	identity string

	toRedis string
	toDir   string
	toRDB   string
	// slotsFrom: with --to-dir of a backup set, the cluster whose primaries
	// get one dir each.
	slotsFrom string

	method    string
	listen    string
	advertise string
	verify    string

	force      bool
	noPrecheck bool
	json       bool

	keys  keyFlags
	redis redisFlags
	pitr  pitrFlags // point in time (restore_pitr.go)
}

func newRestoreCmd(e *env) *cobra.Command {
	var o restoreOpts
	c := &cobra.Command{
		Use:   "restore (--repo URL [--name NAME] [--latest | --snapshot ID] | --from-rdb FILE) (--to-redis URL | --to-dir DIR | --to-rdb FILE)",
		Short: "Restore a snapshot or an RDB file into a server, a data dir or a file",
		Long: `Restores a repository snapshot (verified against its manifest, decrypted and
decompressed on the fly) or a local RDB file.

--to-redis sends RESTORE ... ABSTTL for every key over --parallel connections,
payloads taken from the RDB as they are. Function libraries are loaded first.
Keys whose TTL already passed are skipped and counted. Where the target is
older than the source, payloads are relabelled to its RDB version when it
knows the type, and otherwise (and for values above its proto-max-bulk-len)
rebuilt with plain commands (SET, RPUSH, SADD, ZADD, HSET, XADD, XGROUP,
XCLAIM); the summary counts those keys as converted. Replicas are refused.

A backup set of a Redis Cluster (taken by snapshot at a cluster node;
--snapshot SET, or --name CLUSTER with --latest) restores into a cluster of
any shape (each key to the primary serving its slot, one pipeline per
primary; keys answered MOVED/ASK/TRYAGAIN/CLUSTERDOWN are written again with
a fresh slot map) or into a standalone server (all keys in db 0); see
docs/cluster.md. A single snapshot (or --from-rdb file) into a cluster
target is routed the same way; a cluster has db 0 only, so its keys must
be in one db that goes to db 0 (--db N --map-db N:0 for another).
A set also writes one data dir per source shard (--to-dir DIR:
DIR/<shard source>/dump.rdb), one per primary of a target cluster
(--to-dir DIR --slots-from redis://node: DIR/<host>-<port>/dump.rdb with the
keys of the slots that primary serves, for its data dir), or one RDB with
every key in db 0 (--to-rdb FILE); the files are published only when the
union of their digests is the set's.

--method auto (the default) restores by replication when the target is a
standalone primary without replicas, holds no keys and no functions,
allows CONFIG SET and REPLICAOF, loads the RDB's version and can connect
to redback: redback listens (--listen, or the local address of its own
connection to the target), sets a one-time token as the target's
masterauth, sends REPLICAOF, answers the target's PSYNC with a full sync
and streams the RDB (rewritten when filtered, checked as it goes; the end
mark only once all of it was checked), waits until the target loaded it,
compares DEBUG DIGEST, then sends REPLICAOF NO ONE and puts masterauth
and repl-diskless-load back. On any failure the target is made a primary
again with its config as before, and emptied again; the error says what it
holds. Otherwise auto uses RESTORE commands and says why. --method
replicate fails instead of falling back; with --conflict replace it also
replaces a non-empty target's whole dataset. --method restore always
uses RESTORE commands.

--conflict fail (the default) refuses, before writing anything, a target db
that will receive keys and is not empty; replace overwrites (restoring twice
gives the same data); skip keeps the target's keys.

--to-dir writes DIR/dump.rdb (temp file, fsync, rename), parsed and checked
on the way, for redis-server --dir DIR. --to-rdb writes one file.

Memory does not grow with the data: a value too big to hold is spooled to
an unlinked temporary file and sent from there (or copied as it streams).
Unless $GOMEMLIMIT is set, restore sets the Go runtime's soft memory limit
to 34MiB plus its batches in flight (--parallel×4+2 MiB; 40MiB by default),
so that the heap stays near what it holds instead of twice that.

Exit 0 on success, 1 when the restore failed or some keys were not restored
(each reason is listed), 2 on usage errors, 3 when the source data is
damaged (the count of keys already written is printed).`,
		Example: `  redback restore --repo file:///backups/redis --to-redis redis://10.0.0.5:6379
  redback restore --repo s3://bucket/redis --snapshot 20261125T140312.123Z-a1b2c3 --identity key.txt --to-dir /var/lib/redis
  redback restore --from-rdb dump.rdb --to-redis redis://127.0.0.1:6380 --conflict replace --match 'user:*' --map-db 0:3`,
		Args: exactArgs(0, "redback restore --from-rdb dump.rdb --to-redis redis://127.0.0.1:6379"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRestore(cmd.Context(), e, &o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.repo, "repo", "", "repository URL to restore a snapshot from")
	addNameFlag(f, &o.name, false)
	f.BoolVar(&o.latest, "latest", false, "restore the newest verified snapshot (the default with --repo)")
	f.StringVar(&o.snapshot, "snapshot", "", "snapshot id to restore (see `redback list --repo URL`)")
	f.StringVar(&o.fromRDB, "from-rdb", "", "restore a local RDB file instead of a repository snapshot")
	f.StringVar(&o.identity, "identity", "", "age identity file for encrypted snapshots (or $REDBACK_IDENTITY_FILE, $REDBACK_IDENTITY)")
	f.StringVar(&o.toRedis, "to-redis", "", "restore into a live server: redis://[user:pass@]host:port, rediss://..., unix:///path")
	f.StringVar(&o.toDir, "to-dir", "", "write DIR/dump.rdb for `redis-server --dir DIR`")
	f.StringVar(&o.toRDB, "to-rdb", "", "write a plain RDB file")
	f.StringVar(&o.slotsFrom, "slots-from", "", "with --to-dir of a backup set: write one dir per primary of this cluster (any node's URL), each with the keys of the slots it serves")
	f.StringVar(&o.method, "method", "auto", "with --to-redis: replicate (the target loads the RDB as redback's replica, at its own load speed), restore (RESTORE commands), or auto (replicate when the target allows it)")
	f.StringVar(&o.verify, "verify", "digest", "with --to-redis --method replicate/auto: how the loaded target is proven: digest (its DEBUG DIGEST against the data's, the full proof; the target hashes every key, which can take several times its load) or sample (100 keys chosen by hash read back by DUMP and PEXPIRETIME, and the key counts per db; the stream itself is still checked against the snapshot's digest)")
	f.StringVar(&o.listen, "listen", "", "with --method replicate/auto: HOST:PORT redback listens on for the target's replication connection (default: the local address of its connection to the target, any port)")
	f.StringVar(&o.advertise, "advertise", "", "with --method replicate/auto: HOST:PORT the target is told to connect to (default: the listening address)")
	o.keys.addFlags(f, "restore", restore.DefaultParallel, "connections to the target server")
	f.BoolVar(&o.force, "force", false, "replace an existing dump.rdb (--to-dir) or file (--to-rdb)")
	f.BoolVar(&o.noPrecheck, "no-precheck", false, "with --to-redis: skip reading the stored snapshot once to check its size and sha256 before the first write (a damaged snapshot is then found after keys were written)")
	f.BoolVar(&o.json, "json", false, "print one JSON object instead of text (no progress line)")
	o.redis.addFlags(f)
	o.pitr.addFlags(f)
	return c
}

// restoreJSON is the --json output.
type restoreJSON struct {
	Snapshot string `json:"snapshot"`
	Source   string `json:"source"`
	Target   string `json:"target"`
	// Into a cluster: each primary's share and the keys written again
	// after redirects.
	Targets []clusterset.TargetResult `json:"targets,omitempty"`
	Resent  int64                     `json:"keys_resent,omitempty"`
	Rounds  int                       `json:"resend_rounds,omitempty"`
	keysJSON
	Error string `json:"error,omitempty"`
}

func (o *restoreOpts) validate() (restore.Options, error) {
	var ro restore.Options
	try := "redback restore --from-rdb dump.rdb --to-redis redis://127.0.0.1:6379"
	targets := 0
	for _, t := range []string{o.toRedis, o.toDir, o.toRDB} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		return ro, usagef(try, "give exactly one target: --to-redis URL, --to-dir DIR or --to-rdb FILE (got %d)", targets)
	}
	switch {
	case o.repo == "" && o.fromRDB == "":
		return ro, usagef(try, "give a source: --repo URL (with --latest or --snapshot ID) or --from-rdb FILE")
	case o.repo != "" && o.fromRDB != "":
		return ro, usagef(try, "give one source: --repo URL or --from-rdb FILE, not both")
	case o.fromRDB != "" && (o.snapshot != "" || o.latest):
		return ro, usagef(try, "--snapshot and --latest go with --repo, not with --from-rdb")
	case o.snapshot != "" && o.latest:
		return ro, usagef("redback restore --repo file:///backups/redis --snapshot ID --to-dir /var/lib/redis", "give --latest or --snapshot ID, not both")
	}
	c, f, err := o.keys.parse("restore")
	if err != nil {
		return ro, err
	}
	ro.Conflict, ro.Parallel, ro.Force, ro.Filter, ro.NoPrecheck = c, o.keys.Parallel, o.force, f, o.noPrecheck
	m, err := restore.ParseMethod(o.method)
	if err != nil {
		return ro, usagef("redback restore --from-rdb dump.rdb --to-redis redis://127.0.0.1:6379 --method replicate", "--method: %v", err)
	}
	if o.toRedis == "" && (o.method != "auto" || o.listen != "" || o.advertise != "") {
		return ro, usagef(try, "--method, --listen and --advertise apply to --to-redis")
	}
	if m == restore.MethodRestore && (o.listen != "" || o.advertise != "") {
		return ro, usagef("redback restore --from-rdb dump.rdb --to-redis redis://127.0.0.1:6379 --listen 127.0.0.1:7000", "--listen and --advertise go with --method replicate or auto")
	}
	for _, a := range []struct{ flag, v string }{{"--listen", o.listen}, {"--advertise", o.advertise}} {
		if a.v == "" {
			continue
		}
		if _, p, err := net.SplitHostPort(a.v); err != nil || p == "" {
			return ro, usagef("redback restore --from-rdb dump.rdb --to-redis redis://127.0.0.1:6379 "+a.flag+" 127.0.0.1:7000", "%s %q: want HOST:PORT", a.flag, a.v)
		}
	}
	ro.Method, ro.Listen, ro.Advertise = m, o.listen, o.advertise
	switch o.verify {
	case "digest":
	case "sample":
		if o.toRedis == "" || m == restore.MethodRestore {
			return ro, usagef("redback restore --repo file:///backups/redis --latest --to-redis redis://127.0.0.1:6379 --verify sample", "--verify sample goes with --to-redis and --method replicate or auto (RESTORE commands are always checked by sample)")
		}
		ro.VerifySample = true
	default:
		return ro, usagef("redback restore --repo file:///backups/redis --latest --to-redis redis://127.0.0.1:6379 --verify sample", "--verify %q: want digest or sample", o.verify)
	}
	if o.toRedis == "" && ro.Conflict != restore.ConflictFail {
		return ro, usagef("redback restore --from-rdb dump.rdb --to-dir /var/lib/redis --force", "--conflict applies to --to-redis; use --force to replace an existing file")
	}
	return ro, nil
}

// restoreHeapBase is what a restore holds besides its batches in flight
// (the source's read-ahead, decompression and RDB buffers, a spooled
// value's buffer, the routers of a cluster restore): its soft memory limit
// is this plus the batches (restoreMemoryLimit).
const restoreHeapBase = 34 << 20

// restoreMemoryLimit is the soft memory limit of a restore over parallel
// connections: restoreHeapBase and the batches of commands in flight
// (parallel×4+2 of restore.DefaultBatchBytes, shared by a cluster's
// primaries), 40 MiB by default. With it the heap of a cluster restore
// (one pipeline per primary, one reader per shard) stays near what is
// live instead of twice that.
func restoreMemoryLimit(parallel int) int64 {
	return restoreHeapBase + restore.BatchMemory(parallel)
}

func runRestore(ctx context.Context, e *env, o *restoreOpts) error {
	softMemoryLimit(e, restoreMemoryLimit(o.keys.Parallel))
	set, base, err := o.findSet(ctx, e)
	if err != nil {
		return err
	}
	if o.slotsFrom != "" && (set == nil || o.toDir == "" || o.pitr.requested()) {
		if set != nil {
			base.Close()
		}
		return usagef("redback restore --repo URL --snapshot SET --to-dir /restore --slots-from redis://node-of-the-target-cluster:6379",
			"--slots-from goes with --to-dir of a Redis Cluster's backup set")
	}
	if o.pitr.requested() {
		cl := ""
		if set != nil {
			cl = set.Cluster
			base.Close()
		} else if cl, err = o.shippedCluster(ctx, e); err != nil {
			return err
		}
		if cl != "" {
			return runSetPITR(ctx, e, o, cl)
		}
		return o.runOne(ctx, e)
	}
	if set != nil {
		ro, err := o.validate()
		if err != nil {
			base.Close()
			return err
		}
		return o.runSet(ctx, e, set, base, ro)
	}
	return o.runOne(ctx, e)
}

// point is what the flags ask to restore from one source: a point of the
// log (its flags checked), a local RDB file, or a snapshot.
func (o *restoreOpts) point() (ops.RestorePoint, error) {
	switch {
	case o.pitr.requested():
		tg, err := o.pitr.target()
		if err != nil {
			return ops.RestorePoint{}, err
		}
		if o.fromRDB != "" || o.snapshot != "" || o.latest {
			return ops.RestorePoint{}, usagef("redback restore --repo URL --at 2026-11-25T14:03:12Z --to-redis URL", "a point-in-time restore picks its base snapshot itself: drop --from-rdb, --snapshot and --latest")
		}
		if len(o.keys.Match) > 0 || len(o.keys.DBs) > 0 || len(o.keys.MapDB) > 0 {
			return ops.RestorePoint{}, usagef("redback restore --repo URL --at 2026-11-25T14:03:12Z --to-redis URL", "--match, --db and --map-db cannot be combined with a point in time (the log is replayed whole)")
		}
		return ops.LogPoint(tg), nil
	case o.fromRDB != "":
		return ops.FilePoint(o.fromRDB), nil
	}
	return ops.SnapshotPoint(o.snapshot), nil
}

// destination parses --to-redis, --to-dir or --to-rdb (validate checked
// that exactly one is given); a URL naming a db is a usage error.
func (o *restoreOpts) destination(e *env, log bool) (ops.Destination, error) {
	switch {
	case o.toRedis != "":
		u, err := o.redis.parse(e, "to-redis", o.toRedis)
		if err != nil {
			return ops.Destination{}, err
		}
		if u.DB != 0 && log {
			return ops.Destination{}, usagef("redback restore --repo URL --at 2026-11-25T14:03:12Z --to-redis redis://127.0.0.1:6379", "--to-redis names db %d: a point-in-time restore writes every db where the source had it; drop the /%d", u.DB, u.DB)
		}
		if u.DB != 0 {
			return ops.Destination{}, usagef("redback restore --from-rdb dump.rdb --to-redis redis://127.0.0.1:6379 --map-db 0:"+strconv.Itoa(u.DB),
				"--to-redis names db %d: keys go to their source db; use --map-db FROM:%d to move them", u.DB, u.DB)
		}
		return ops.Destination{Redis: u}, nil
	case o.toDir != "":
		return ops.Destination{Dir: o.toDir}, nil
	}
	return ops.Destination{RDB: o.toRDB}, nil
}

// runOne restores one source's point (a snapshot, a point of its log) or
// a local RDB file through ops.Restore, and prints what it did.
func (o *restoreOpts) runOne(ctx context.Context, e *env) error {
	pt, err := o.point()
	if err != nil {
		return err
	}
	ro, err := o.validate()
	if err != nil {
		return err
	}
	dst, err := o.destination(e, pt.Log != nil)
	if err != nil {
		return err
	}
	var repo storage.Backend
	var ids []age.Identity
	if pt.File == "" {
		if ids, err = loadIdentities(e, o.identity, "redback restore --repo URL --identity key.txt ..."); err != nil {
			return err
		}
		try := "redback restore --repo " + o.repo + " --to-redis URL"
		if pt.Log != nil {
			try = "redback restore --repo " + o.repo + " --at TIME --to-redis URL"
		}
		r, err := openSource(ctx, e, o.repo, o.name, try)
		if err != nil {
			return err
		}
		defer r.Close()
		repo = r
	}
	var bar *progress.Bar
	params := ops.RestoreParams{Options: ro, Identities: ids, RedisServer: o.pitr.RedisServer,
		Warn: func(msg string) { fmt.Fprintln(e.Err, "warning: "+msg) },
		Decided: func(d *ops.RestoreDecision) {
			if d.Plan != nil {
				o.printPlan(e, d.Plan)
				return
			}
			bar = progress.New(e.Err, "restore", d.Source.Size, !o.json && progress.IsTerminal(e.Err))
		}}
	if pt.Log == nil {
		params.Options.Progress = func(bytes, keys int64) { bar.Add(bytes, keys) }
	}
	start := time.Now()
	res, rerr := ops.Restore(ctx, repo, pt, dst, params)
	if bar != nil {
		bar.Done()
	}
	switch {
	case res == nil:
		return rerr // nothing was decided: no summary
	case pt.Log != nil:
		return o.reportLog(e, res, dst, rerr, time.Since(start))
	}
	return o.reportSnapshot(e, res, dst, rerr, time.Since(start))
}

// reportSnapshot prints what a snapshot or file restore did.
func (o *restoreOpts) reportSnapshot(e *env, r *ops.RestoreResult, dst ops.Destination, rerr error, took time.Duration) error {
	res := r.Snapshot
	if res == nil {
		res = &restore.Result{}
	}
	dur := took.Seconds()
	target := dst.String()
	src := r.Decision.Source
	j := restoreJSON{Snapshot: r.Decision.SnapshotID, Source: src.Name, Target: target, keysJSON: newKeysJSON(res, dur)}
	if r.Set != nil && r.Set.Cluster {
		j.Targets, j.Resent, j.Rounds = r.Set.Targets, r.Set.Resent, r.Set.Rounds
	}
	rerr = keysFailed(res, "restored", rerr)
	if o.json {
		if rerr != nil {
			j.Error = rerr.Error()
		}
		return writeJSONResult(e, j, rerr)
	}
	printKeyFailures(e, res)
	for _, n := range res.Notes {
		fmt.Fprintf(e.Err, "note: %s\n", n)
	}
	if rerr != nil && res.Bytes == 0 && res.KeysRestored == 0 {
		return rerr // stopped before reading the source: no summary
	}
	if res.Method != "" {
		target += " by " + res.Method
	}
	fmt.Fprintf(e.Out, "restored %s to %s: %d keys restored, %d skipped (conflict), %d expired, %d filtered, %d converted (fallback), %d failed; %d functions; %s in %.1fs (%.0f keys/s)\n",
		src.Name, target, res.KeysRestored, res.KeysSkipped, res.KeysExpired, res.KeysFiltered, res.KeysConverted, res.KeysFailed,
		res.FunctionsLoaded, humanBytes(res.Bytes), dur, j.KeysPerSecond)
	if len(j.Targets) > 0 {
		fmt.Fprintf(e.Out, "into a cluster of %d primaries (keys routed by slot); %d keys written again after redirects\n", len(j.Targets), j.Resent)
		for _, t := range j.Targets {
			fmt.Fprintf(e.Out, "  %s: %d slots, %d keys\n", t.Addr, t.Slots, t.KeysRestored)
		}
	}
	return rerr
}
