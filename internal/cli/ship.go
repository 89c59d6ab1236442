package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"redback/internal/pack"
	"redback/internal/progress"
	"redback/internal/ship"
)

type shipOpts struct {
	source, repo, ack, spool, level, aofDir string
	interval                                time.Duration
	encryptTo                               []string
	json                                    bool
	redis                                   redisFlags
}

func newShipCmd(e *env) *cobra.Command {
	o := &shipOpts{}
	c := &cobra.Command{
		Use:   "ship --source URL --repo URL",
		Short: "Ship a Redis server's replication stream into a repository continuously",
		Long: `Connect to a Redis server as a replica and store its command stream in the
repository as log segments, continuously, for point-in-time restore.

The first start takes a full sync: its RDB becomes the verified base snapshot
of a new generation. Segments are cut at least every --interval (and at 4 MiB)
and stored data object first, manifest last, in offset order. A dropped link
resumes with PSYNC from where it stopped; a full resync ends the generation
and starts a new one (never a silent gap). A restarted ship resumes the open
generation of the same --source from the repository; it keeps no local state.

Storage that is slow or down never stalls the replication link: data waits in
a spool of --spool-size bytes. When that is full, ship drops the link, logs an
error, and reconnects once the spool is stored.

--ack durable reports the durable offset to the primary, so "WAIT 1 <ms>"
returns only once a write is in the repository.

Runs until SIGINT or SIGTERM, then stores what it received and exits 0.`,
		Example: `  redback ship --source redis://127.0.0.1:6379 --repo file:///var/lib/redback/cache-a
  redback ship --source redis://10.0.0.5:6379 --repo 's3://bucket/redis?region=eu-west-1' --ack durable --encrypt-to age1...`,
		Args: exactArgs(0, "redback ship --source redis://127.0.0.1:6379 --repo file:///backups/redis"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runShip(cmd.Context(), e, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.source, "source", "", "server to replicate from: redis://[user:pass@]host:port, rediss://...")
	f.StringVar(&o.repo, "repo", "", "repository: file:///path, a path, or s3://bucket/prefix?region=R&endpoint=URL")
	f.DurationVar(&o.interval, "interval", ship.DefaultInterval, "longest time received data waits before it is uploaded")
	f.StringVar(&o.ack, "ack", ship.AckProcessed, "offset reported to the primary: processed or durable (stored)")
	f.StringVar(&o.spool, "spool-size", "64MiB", "memory for data received but not yet stored (e.g. 64MiB, 1GiB)")
	f.StringArrayVar(&o.encryptTo, "encrypt-to", nil, "age recipient (age1...) or recipients file; repeatable")
	f.StringVar(&o.level, "compression", "default", "zstd level: fastest, default, better, best")
	f.StringVar(&o.aofDir, "aof-dir", "", "tail a multi-part AOF directory instead of replicating (not implemented yet)")
	f.BoolVar(&o.json, "json", false, "print the final state as JSON on exit")
	o.redis.addFlags(f)
	return c
}

// parseSpoolSize reads "64MiB", "512k", "1GB", "1048576".
func parseSpoolSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suf)), u.m
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return int64(n * float64(mult)), nil
}

func runShip(ctx context.Context, e *env, o *shipOpts) error {
	if o.aofDir != "" {
		return usagef("redback ship --source redis://127.0.0.1:6379 --repo ...",
			"--aof-dir is not implemented yet; ship from the replication stream with --source")
	}
	if o.ack != ship.AckProcessed && o.ack != ship.AckDurable {
		return usagef("--ack durable", "--ack must be processed or durable, not %q", o.ack)
	}
	if o.interval <= 0 {
		return usagef("--interval 1s", "--interval must be positive")
	}
	spool, err := parseSpoolSize(o.spool)
	if err != nil || spool < 1<<20 {
		return usagef("--spool-size 64MiB", "--spool-size must be a size of at least 1MiB, not %q", o.spool)
	}
	u, err := o.redis.parse(e, "source", o.source)
	if err != nil {
		return err
	}
	level, err := zstdLevel(o.level)
	if err != nil {
		return err
	}
	rs, err := pack.ParseRecipients(o.encryptTo)
	if err != nil {
		return usagef("--encrypt-to age1...", "--encrypt-to: %v", err)
	}
	ids, err := pack.LoadIdentities("", e.getenv)
	if err != nil {
		return err
	}
	repo, err := openRepo(ctx, e, o.repo)
	if err != nil {
		return err
	}
	defer repo.Close()
	s := &ship.Shipper{
		Source:     u,
		Backend:    repo,
		Pack:       pack.Options{Level: level, Recipients: rs},
		Identities: ids,
		Interval:   o.interval,
		Ack:        o.ack,
		SpoolSize:  spool,
		Log:        e.log,
	}
	e.log.Info("shipping", "source", u.Redacted(), "repo", repo.Location(), "ack", o.ack, "interval", o.interval.String())

	var wg sync.WaitGroup
	statusCtx, stopStatus := context.WithCancel(ctx)
	if !o.json && progress.IsTerminal(e.Err) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			shipStatusLine(statusCtx, e, s)
		}()
	}
	err = s.Run(ctx)
	stopStatus()
	wg.Wait()
	st := s.Stats()
	if o.json {
		enc := json.NewEncoder(e.Out)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(st); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		fmt.Fprintf(e.Out, "shipped: generation %s, durable offset %d, %d segments, %d reconnects\n",
			st.Generation, st.DurableOffset, st.SegmentsUploaded, st.Reconnects)
	}
	return err
}

// shipStatusLine rewrites one status line on stderr every second.
func shipStatusLine(ctx context.Context, e *env, s *ship.Shipper) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(e.Err, "\r\033[K")
			return
		case <-t.C:
			st := s.Stats()
			conn := "connected"
			if !st.Connected {
				conn = "DISCONNECTED"
			}
			fmt.Fprintf(e.Err, "\r\033[K%s  durable %d  lag %s / %.1fs  spool %s  segments %d",
				conn, st.DurableOffset, humanBytes(st.LagBytes), st.LagSeconds, humanBytes(st.SpoolBytes), st.SegmentsUploaded)
		}
	}
}
