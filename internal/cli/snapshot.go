package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"redback/internal/catalog"
	"redback/internal/progress"
	"redback/internal/redisurl"
	"redback/internal/sentinel"
	"redback/internal/snapshot"
	"redback/internal/storage"
)

type snapshotOpts struct {
	source, repo, method string
	name                 string
	json                 bool
	preferReplica        bool
	redis                redisFlags
	pack                 packFlags
}

func newSnapshotCmd(e *env) *cobra.Command {
	o := &snapshotOpts{}
	c := &cobra.Command{
		Use:   "snapshot --source URL --repo URL [--name NAME]",
		Short: "Take a verified snapshot of a Redis server into a repository",
		Long: `Take a snapshot (RDB) of a Redis server, verify it while it streams (CRC-64,
full parse, key census, DEBUG DIGEST), compress it with zstd, optionally
encrypt it with age, and store it in the repository. The manifest that makes
the snapshot visible is written last and only when verification passed.

The snapshot belongs to the source --name of the repository (default: a
name from the server's host and port, printed); snapshot holds the source's
lease while it writes, so it is refused while another writer (an agent, ship)
writes to that source.

Methods:
  sync    (default) connect as a replica and receive the RDB over the
          replication protocol; works remotely, touches no disk on the server.
  bgsave  run BGSAVE and read the file from the server's dir; for an agent
          on the Redis host.`,
		Example: `  redback snapshot --source redis://127.0.0.1:6379 --repo file:///var/lib/redback/cache-a
  redback snapshot --source redis://10.0.0.5:6379 --repo 's3://bucket/redis?region=eu-west-1' --encrypt-to age1...`,
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
	f.BoolVar(&o.preferReplica, "prefer-replica", true, "for a redis+sentinel:// source, read a healthy replica when there is one (else the primary)")
	o.redis.addFlags(f)
	return c
}

func runSnapshot(ctx context.Context, e *env, o *snapshotOpts) error {
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
	if o.json {
		enc := json.NewEncoder(e.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(snap)
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
type snapshotParams struct {
	Method string
	// PreferReplica reads a healthy replica of a Sentinel-managed set.
	PreferReplica bool
	Store         snapshot.Options
}

// takeSnapshot is the one code path for a snapshot (CLI and agent).
func takeSnapshot(ctx context.Context, e *env, u *redisurl.URL, p snapshotParams) (*catalog.Snapshot, error) {
	if p.Store.Start.IsZero() {
		p.Store.Start = time.Now()
	}
	set := u
	u, err := sentinel.Resolve(ctx, set, sentinel.Options{PreferReplica: p.PreferReplica})
	if err != nil {
		return nil, err
	}
	src, err := sourceInfo(ctx, u)
	if err != nil {
		return nil, err
	}
	if u != set {
		src.Address, src.Node = set.Redacted(), u.Redacted()
		e.log.Info("snapshot of a Sentinel-managed set", "set", set.Redacted(), "node", u.Redacted(), "role", src.Role)
	}
	p.Store.Source = src
	p.Store.Method = p.Method
	switch p.Method {
	case "bgsave":
		c := redis.NewClient(u.GoRedisOptions())
		defer c.Close()
		f, err := snapshot.TakeBGSave(ctx, c, snapshot.BGSaveOptions{})
		if err != nil {
			if errors.Is(err, snapshot.ErrNotLocal) {
				return nil, usagef("redback snapshot --method sync --source "+u.Redacted()+" ...",
					"--method bgsave reads the RDB file on the Redis host, but %s: %v; run redback on that host or use --method sync", u.Redacted(), err)
			}
			return nil, err
		}
		defer f.Close()
		for _, w := range f.Waited {
			e.log.Info(w)
		}
		p.Store.Progress.SetTotal(f.Size)
		return snapshot.Store(ctx, f, p.Store)
	default:
		return snapshot.TakeSync(ctx, u, p.Store, e.log)
	}
}

// sourceInfo records who the source is (no secrets).
func sourceInfo(ctx context.Context, u *redisurl.URL) (catalog.Source, error) {
	src := catalog.Source{Address: u.Redacted()}
	opts := u.GoRedisOptions()
	c := redis.NewClient(opts)
	defer c.Close()
	txt, err := c.Info(ctx, "server", "replication").Result()
	var rerr redis.Error
	if errors.As(err, &rerr) && !strings.HasPrefix(rerr.Error(), "NOAUTH") && !strings.HasPrefix(rerr.Error(), "WRONGPASS") {
		// The server answered but refuses INFO (renamed on managed
		// services): the snapshot itself can still be taken.
		return src, nil
	}
	if err != nil {
		return src, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	for _, line := range strings.Split(txt, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "run_id":
			src.RunID = v
		case "redis_version":
			src.RedisVersion = v
		case "role":
			src.Role = v
		}
	}
	return src, nil
}

// humanBytes formats a byte count for people.
func humanBytes(n int64) string { return progress.HumanBytes(n) }
