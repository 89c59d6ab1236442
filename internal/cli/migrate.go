package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"redback/internal/migrate"
	"redback/internal/progress"
	"redback/internal/restore"
	"redback/internal/sentinel"
)

// migrateOpts are the flags of `redback migrate`.
type migrateOpts struct {
	from, to string
	method   string
	json     bool

	keys  keyFlags
	redis redisFlags
}

const migrateTry = "redback migrate --from redis://127.0.0.1:6380 --to redis://127.0.0.1:6379 --conflict skip"

func newMigrateCmd(e *env) *cobra.Command {
	var o migrateOpts
	c := &cobra.Command{
		Use:   "migrate --from URL --to URL",
		Short: "Copy keys between two live servers (side instance -> production)",
		Long: `Copies keys from one live server into another: the "restore instance ->
production" step of a recovery, without a per-key shell loop.

The source is read with SCAN and pipelined MULTI/DUMP/PEXPIRETIME/EXEC
batches over --parallel connections (value and expire time of a key are
read at the same instant); the target receives pipelined RESTORE ... ABSTTL
batches over --parallel connections, through the same code as
'redback restore --to-redis': expire times are kept to the millisecond,
keys whose TTL passed are skipped, payloads of a newer source are relabelled
or rebuilt with plain commands, function libraries are loaded first, and
cluster targets and replicas are refused.

--conflict fail (the default) refuses, before writing anything, a target db
that will receive keys and is not empty; replace overwrites; skip keeps the
target's keys (use it to copy a side instance back into production after
the application wrote again: the newer writes win).

--method sync reads the source's RDB over the replication protocol instead
(a full sync, as 'redback snapshot' does): one consistent point in time,
serialized by a forked child, so the source spends about half the CPU; every
key is streamed and the filters apply on this side, and the source's
repl-diskless-sync-delay (5 s by default) is waited first. Use it to copy a
whole side instance; keep dump for a small --match subset of a large server,
or where replication is refused.

Keys deleted or expired on the source while the copy runs are counted as
vanished, not failed. With --method dump, migrate compares the source's INFO
before and after the copy (master_repl_offset, rdb_changes_since_last_save,
key counts) and warns at the end when the source changed meanwhile
(source_changed in --json), pointing to --method sync. The copy is not a point-in-time snapshot of a source
that is being written: stop writes to it (or use a side instance) for that.

Exit 0 on success, 1 when the copy failed or some keys were not copied
(each reason is listed), 2 on usage errors.`,
		Example: `  redback migrate --from redis://127.0.0.1:6380 --to redis://127.0.0.1:6379 --conflict skip
  redback migrate --from redis://127.0.0.1:6380 --to redis://10.0.0.5:6379 --match 'user:*' --db 0 --conflict replace --json`,
		Args: exactArgs(0, migrateTry),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrate(cmd.Context(), e, &o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.from, "from", "", "server to copy keys from: redis://[user:pass@]host:port, rediss://..., unix:///path")
	f.StringVar(&o.to, "to", "", "server to copy keys into")
	o.keys.addFlags(f, "copy", migrate.DefaultParallel, "connections to each server")
	f.StringVar(&o.method, "method", migrate.MethodDump, "how the source is read: dump (SCAN + DUMP/PEXPIRETIME batches; best for a --match subset) or sync (one full sync of its RDB over the replication protocol: a consistent point in time, less CPU on the source; waits its repl-diskless-sync-delay)")
	f.BoolVar(&o.json, "json", false, "print one JSON object instead of text (no progress line)")
	o.redis.addFlags(f)
	return c
}

// migrateJSON is the --json output.
type migrateJSON struct {
	Source       string `json:"source"`
	Target       string `json:"target"`
	SourceDBs    []int  `json:"source_dbs"`
	KeysScanned  int64  `json:"keys_scanned"`
	KeysVanished int64  `json:"keys_vanished"`
	// SourceChanged says how the source changed during a --method dump
	// copy (empty when it did not).
	SourceChanged string `json:"source_changed,omitempty"`
	keysJSON
	Error string `json:"error,omitempty"`
}

func (o *migrateOpts) validate() (migrate.Options, error) {
	var mo migrate.Options
	if o.from == "" || o.to == "" {
		return mo, usagef(migrateTry, "give both --from URL and --to URL")
	}
	c, f, err := o.keys.parse("migrate")
	if err != nil {
		return mo, err
	}
	if o.method != migrate.MethodDump && o.method != migrate.MethodSync {
		return mo, usagef("redback migrate ... --method sync", "--method must be dump or sync, got %q", o.method)
	}
	mo.Conflict, mo.Parallel, mo.Method, mo.Filter = c, o.keys.Parallel, o.method, f
	return mo, nil
}

func runMigrate(ctx context.Context, e *env, o *migrateOpts) error {
	mo, err := o.validate()
	if err != nil {
		return err
	}
	from, err := o.redis.node(ctx, e, "from", o.from, sentinel.Options{})
	if err != nil {
		return err
	}
	to, err := o.redis.node(ctx, e, "to", o.to, sentinel.Options{})
	if err != nil {
		return err
	}
	if from.DB != 0 {
		return usagef(migrateTry+" --db "+fmt.Sprint(from.DB), "--from names db %d: select source dbs with --db %d", from.DB, from.DB)
	}
	if to.DB != 0 {
		return usagef(migrateTry+" --map-db 0:"+fmt.Sprint(to.DB), "--to names db %d: keys go to their source db; use --map-db FROM:%d to move them", to.DB, to.DB)
	}
	bar := progress.New(e.Err, "migrate", -1, !o.json && progress.IsTerminal(e.Err))
	mo.Progress = func(bytes, keys int64) { bar.Add(bytes, keys) }
	start := time.Now()
	res, merr := migrate.Run(ctx, from, to, mo)
	bar.Done()
	dur := time.Since(start).Seconds()
	rr := res.Restore
	if rr == nil {
		rr = &restore.Result{}
	}
	j := migrateJSON{Source: res.Source, Target: res.Target, SourceDBs: res.SourceDBs, KeysScanned: res.KeysScanned,
		KeysVanished: res.KeysVanished, SourceChanged: res.SourceChanged, keysJSON: newKeysJSON(rr, dur)}
	if res.SourceChanged != "" {
		fmt.Fprintf(e.Err, "warning: the source changed while it was copied (%s): keys were read at different moments, so the copy is not one consistent point in time; for that, use --method sync (one full sync of its RDB)\n", res.SourceChanged)
	}
	if j.SourceDBs == nil {
		j.SourceDBs = []int{}
	}
	merr = keysFailed(rr, "copied", merr)
	if o.json {
		if merr != nil {
			j.Error = merr.Error()
		}
		return writeJSONResult(e, j, merr)
	}
	printKeyFailures(e, rr)
	if merr != nil && res.KeysScanned == 0 && rr.KeysRestored == 0 {
		return merr
	}
	fmt.Fprintf(e.Out, "migrated %s to %s: %d keys copied, %d skipped (conflict), %d expired, %d vanished, %d converted (fallback), %d failed; %d functions; %s in %.1fs (%.0f keys/s)\n",
		res.Source, res.Target, rr.KeysRestored, rr.KeysSkipped, rr.KeysExpired, res.KeysVanished, rr.KeysConverted, rr.KeysFailed,
		rr.FunctionsLoaded, humanBytes(rr.Bytes), dur, j.KeysPerSecond)
	return merr
}
