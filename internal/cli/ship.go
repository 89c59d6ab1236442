package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"redback/internal/cluster"
	"redback/internal/pack"
	"redback/internal/progress"
	"redback/internal/redisurl"
	"redback/internal/ship"
	"redback/internal/storage"
)

type shipOpts struct {
	source, repo, ack, spool, aofDir, pinDir string
	name                                     string
	singleNode                               bool
	interval, tick, heartbeat                time.Duration
	json                                     bool
	redis                                    redisFlags
	pack                                     packFlags
}

func newShipCmd(e *env) *cobra.Command {
	o := &shipOpts{}
	c := &cobra.Command{
		Use:   "ship (--source URL | --aof-dir DIR) --repo URL [--name NAME]",
		Short: "Ship a Redis server's replication stream into a repository continuously",
		Long: `Connect to a Redis server as a replica and store its command stream in the
repository as log segments, continuously, for point-in-time restore.

The first start takes a full sync: its RDB becomes the verified base snapshot
of a new generation. --interval is the target RPO: a segment is cut early
enough that what it holds is stored within about --interval of its arrival
(--interval less the time storing a segment takes now, never younger than
half of it), at once when nothing waits for storage and the last cut is
--interval ago (a write after a quiet spell), and at 4 MiB; it is stored data
object first, manifest last, in offset order. A dropped link
resumes with PSYNC from where it stopped; a full resync ends the generation
and starts a new one (never a silent gap). A restarted ship resumes the open
generation of the same --source from the repository; it keeps no local state.

Storage that is slow or down never stalls the replication link: data waits in
a spool of --spool-size bytes. The spool bounds the memory held for commands
received but not yet stored, not the size of a command: a single command (or
MULTI/EXEC) larger than the spool, such as a big value the server accepted
(up to its proto-max-bulk-len, 512MB by default), waits until the spool is
stored and then passes alone, in its own segment, with no resync and no new
generation; memory then peaks at about twice that command. When the spool is
full of smaller commands because storage does not keep up, ship drops the
link, logs an error, and reconnects (PSYNC) once the spool is stored. The
default (24MiB) keeps ship within ~40 MB of its own memory while it catches
up a backlog; a bigger spool drops the link less often under bursts that
storage cannot follow (a slow repository, a primary far away, where each
reconnect costs a round trip) at the cost of that much more memory. Unless
$GOMEMLIMIT is set, ship sets the Go runtime's soft memory limit to the
spool plus 20MiB, so that the heap stays near what it holds instead of
growing to twice that before each collection.

--ack durable reports the durable offset to the primary, so "WAIT 1 <ms>"
returns only once a write is in the repository.

While shipping, redback publishes a time marker (PUBLISH __redback__:tick
<unix ms>, SPUBLISH in a cluster) to the source every --tick while writes
flow (every 10s while it is idle). The markers come back through the
replication stream in order with the writes and are stored in the segments
(never replayed): after a dropped link or a restart of ship, the commands the
primary re-sends are then known to within a marker interval instead of the
whole outage. A source whose ACL refuses PUBLISH turns them off with one log
line (see redback acl); --tick 0 turns them off.

An idle source cuts no segment: the primary's PINGs (every 10s) and the idle
time markers are stored as the generation's heartbeat instead, one small
object (gens/<gen>/quiet.json) rewritten in place --interval after the last
write and then every --heartbeat while idle, so the newest durable point
follows the primary's offset with no object per PING. An idle stretch is cut
into a segment only once it covers 256 KiB of the stream (about 10 hours).

Where replication is not allowed, --aof-dir DIR tails the server's multi-part
AOF directory (Redis 7, appendonly yes, aof-use-rdb-preamble yes) instead: each
AOF base file becomes the base snapshot of a generation and its incr files the
log, with times from the #TS annotations (set aof-timestamp-enabled yes;
without them the times are when redback read the commands, and a warning says
so). An AOF rewrite ends the generation and starts a new one. The files are
hard-linked into --spool-dir (default: .redback-aof-pin next to DIR; it must be
on the same filesystem) while they are read, so the rewrite's cleanup cannot
remove them early. The log is only as current as the AOF on disk (appendfsync).

The log belongs to the source --name of the repository (default: a name from
the server's host and port, printed). ship holds the source's lease while it
runs: a second writer of the same source is refused, and ship stops writing
as soon as it could lose the lease.

A --source that is a Redis Cluster node (INFO cluster: cluster_enabled:1)
means the whole cluster (--single-node ships that one node): one stream per
shard, each from the shard's primary into the source NAME-shard-FIRSTSLOT
(--name is the cluster's name), under its own lease. A failover inside a
shard continues on the promoted replica without a gap; a node given slots
gets its own stream; every change of the slot map is recorded with its time.
See docs/cluster.md.

Runs until SIGINT or SIGTERM, then stores what it received and exits 0.`,
		Example: `  redback ship --source redis://127.0.0.1:6379 --repo file:///var/lib/redback/cache-a
  redback ship --source redis://10.0.0.5:6379 --repo 's3://bucket/redis?region=eu-west-1' --ack durable --encrypt-to age1...
  redback ship --aof-dir /var/lib/redis/appendonlydir --repo file:///var/lib/redback/cache-a`,
		Args: exactArgs(0, "redback ship --source redis://127.0.0.1:6379 --repo file:///backups/redis"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runShip(cmd.Context(), e, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.source, "source", "", "server to replicate from: redis://[user:pass@]host:port, rediss://...")
	f.StringVar(&o.repo, "repo", "", "repository: file:///path, a path, or s3://bucket/prefix?region=R&endpoint=URL")
	addNameFlag(f, &o.name, true)
	f.DurationVar(&o.interval, "interval", ship.DefaultInterval, "target RPO: received data is stored within about this long (at most one segment per interval while writes trickle)")
	f.DurationVar(&o.heartbeat, "heartbeat", ship.DefaultHeartbeat, "while the source is idle, how often its heartbeat (gens/<gen>/quiet.json, rewritten in place) is updated instead of cutting a segment per PING")
	f.DurationVar(&o.tick, "tick", ship.DefaultTick, "how often a time marker is published to the source while writes flow (PUBLISH __redback__:tick); 0: none")
	f.StringVar(&o.ack, "ack", ship.AckProcessed, "offset reported to the primary: processed or durable (stored)")
	f.StringVar(&o.spool, "spool-size", "24MiB", "memory for data received but not yet stored (e.g. 24MiB, 1GiB); when storage falls behind by more, ship disconnects and resumes with PSYNC once it is stored; a single larger command waits for it to drain, then passes alone. The process's soft memory limit is this plus 20MiB unless $GOMEMLIMIT is set")
	o.pack.addFlags(f, "default")
	f.StringVar(&o.aofDir, "aof-dir", "", "tail this multi-part AOF directory (appendonlydir) instead of replicating")
	f.StringVar(&o.pinDir, "spool-dir", "", "with --aof-dir: where AOF files are hard-linked while shipped (same filesystem; default DIR/../"+ship.DefaultPinDirName+")")
	f.BoolVar(&o.json, "json", false, "print the final state as JSON on exit")
	f.BoolVar(&o.singleNode, "single-node", false, "for a cluster node: ship that node alone, not every shard of the cluster")
	o.redis.addFlags(f)
	return c
}

// shipHeapBase is what one stream needs besides its spool (the segment
// being built, the encoders, the base snapshot's check during a full
// sync): the soft memory limit of `redback ship` is the spool plus this.
const shipHeapBase = 20 << 20

// softMemoryLimit sets the Go runtime's soft memory limit to n bytes
// unless $GOMEMLIMIT chooses one (or the run is in-process, without
// Stdio.SetMemoryLimit). The GC's default goal lets the heap reach twice
// what is live, and a spool that fills is live: with the limit the heap
// stays near the spool instead (ship; restore's batches likewise). It is
// soft: a command larger than the spool (which passes alone) only makes
// the GC run more often while it is held.
func softMemoryLimit(e *env, n int64) {
	if e.SetMemoryLimit == nil || e.getenv("GOMEMLIMIT") != "" {
		return
	}
	e.SetMemoryLimit(n)
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
	if o.aofDir != "" && o.source != "" {
		return usagef("redback ship --aof-dir /var/lib/redis/appendonlydir --repo file:///backups/redis",
			"--aof-dir and --source are mutually exclusive: tail the AOF directory or replicate, not both")
	}
	if o.aofDir != "" && o.ack == ship.AckDurable {
		return usagef("redback ship --aof-dir /var/lib/redis/appendonlydir --repo file:///backups/redis",
			"--ack durable needs a replication link; it does not apply to --aof-dir")
	}
	if o.pinDir != "" && o.aofDir == "" {
		return usagef("redback ship --aof-dir /var/lib/redis/appendonlydir --spool-dir /var/lib/redis/.redback-pin --repo ...",
			"--spool-dir only applies to --aof-dir")
	}
	if o.ack != ship.AckProcessed && o.ack != ship.AckDurable {
		return usagef("--ack durable", "--ack must be processed or durable, not %q", o.ack)
	}
	if o.interval <= 0 {
		return usagef("--interval 1s", "--interval must be positive")
	}
	if o.heartbeat < time.Second {
		return usagef("--heartbeat 30s", "--heartbeat must be at least 1s, not %s", o.heartbeat)
	}
	if o.tick < 0 || (o.tick > 0 && o.tick < 10*time.Millisecond) {
		return usagef("--tick 100ms", "--tick must be 0 (no time markers) or at least 10ms, not %s", o.tick)
	}
	spool, err := parseSpoolSize(o.spool)
	if err != nil || spool < 1<<20 {
		return usagef("--spool-size 24MiB", "--spool-size must be a size of at least 1MiB, not %q", o.spool)
	}
	var u *redisurl.URL
	if o.aofDir == "" {
		if u, err = o.redis.parse(e, "source", o.source); err != nil {
			return err
		}
	}
	po, err := o.pack.options()
	if err != nil {
		return err
	}
	ids, err := pack.LoadIdentities("", e.getenv)
	if err != nil {
		return err
	}
	if u != nil && !o.singleNode && !u.IsSentinel() && u.Network() == "tcp" {
		on, err := cluster.Enabled(ctx, u)
		if err != nil {
			e.log.Warn("could not tell whether the source is a cluster node; shipping it as one server (--single-node skips this check)", "source", u.Redacted(), "err", err)
		}
		if on {
			return runClusterShip(ctx, e, o, u, po, ids, spool)
		}
	}
	address := "aof:" + o.aofDir
	if u != nil {
		address = u.Redacted()
	} else if abs, err := filepath.Abs(o.aofDir); err == nil {
		address = "aof:" + abs
	}
	base, view, src, err := openWriter(ctx, e, o.repo, o.name, address)
	if err != nil {
		return err
	}
	defer base.Close()
	softMemoryLimit(e, spool+shipHeapBase)
	return leased(ctx, e, view, src.Name, func(ctx context.Context, repo storage.Backend) error {
		return shipLeased(ctx, e, o, u, po, ids, spool, repo, src.Name)
	})
}

// shipLeased ships into repo, the source's view, while its lease is held.
func shipLeased(ctx context.Context, e *env, o *shipOpts, u *redisurl.URL, po pack.Options, ids []age.Identity, spool int64, repo storage.Backend, name string) error {
	s := newShipper(e, o, u, po, ids, spool, repo)
	if u != nil {
		e.log.Info("shipping", "source", u.Redacted(), "repo", repo.Location(), "name", name, "ack", o.ack, "interval", o.interval.String(), "tick", o.tick.String())
	} else {
		e.log.Info("shipping", "aof_dir", o.aofDir, "repo", repo.Location(), "name", name, "interval", o.interval.String())
	}

	var wg sync.WaitGroup
	statusCtx, stopStatus := context.WithCancel(ctx)
	if !o.json && progress.IsTerminal(e.Err) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			shipStatusLine(statusCtx, e, s)
		}()
	}
	err := s.Run(ctx)
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

func newShipper(e *env, o *shipOpts, u *redisurl.URL, po pack.Options, ids []age.Identity, spool int64, repo storage.Backend) *ship.Shipper {
	return &ship.Shipper{
		Source:     u,
		AOFDir:     o.aofDir,
		PinDir:     o.pinDir,
		Backend:    repo,
		Pack:       po,
		Identities: ids,
		Interval:   o.interval,
		Ack:        o.ack,
		Tick:       o.tick,
		Heartbeat:  o.heartbeat,
		SpoolSize:  spool,
		Log:        e.log,
	}
}

// shipStatusLine rewrites one status line on stderr every second.
func shipStatusLine(ctx context.Context, e *env, s *ship.Shipper) {
	statusLine(ctx, e, func() string {
		st := s.Stats()
		conn := "connected"
		if !st.Connected {
			conn = "DISCONNECTED"
		}
		return fmt.Sprintf("%s  durable %d  lag %s / %.1fs  spool %s  segments %d",
			conn, st.DurableOffset, humanBytes(st.LagBytes), st.LagSeconds, humanBytes(st.SpoolBytes), st.SegmentsUploaded)
	})
}

// statusLine rewrites the line text returns on stderr every second until
// ctx ends, then clears it.
func statusLine(ctx context.Context, e *env, text func() string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(e.Err, "\r\033[K")
			return
		case <-t.C:
			fmt.Fprintf(e.Err, "\r\033[K%s", text())
		}
	}
}
