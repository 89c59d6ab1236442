package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"redback/internal/agent"
	"redback/internal/catalog"
	"redback/internal/cluster"
	"redback/internal/clusterset"
	"redback/internal/config"
	"redback/internal/drill"
	"redback/internal/ops"
	"redback/internal/pack"
	"redback/internal/redisurl"
	"redback/internal/serverver"
	"redback/internal/ship"
	"redback/internal/snapshot"
	"redback/internal/storage"
	"redback/internal/synth"
	"redback/internal/ui"
)

type agentOpts struct {
	config      string
	checkConfig bool
	listen      string
	redis       redisFlags
}

const agentTry = "redback agent --config /etc/redback/redback.yaml --check-config"

func newAgentCmd(e *env) *cobra.Command {
	o := &agentOpts{}
	c := &cobra.Command{
		Use:   "agent --config FILE [--check-config]",
		Short: "Run the daemon: scheduled snapshots, log shipping, retention, drills, /metrics",
		Long: `Run redback as a daemon for every source in the configuration file: snapshots
on schedule (never two of one source at once: a run still going when the
next is due is skipped and counted), continuous log shipping, retention
after each successful snapshot, restore drills on schedule. Each repository
is written under a lease: a second agent on the same repository refuses to
start and names the holder.

HTTP on --listen (default from the file, else 127.0.0.1:9477):
  /metrics  Prometheus metrics, label source=<name>
  /healthz  200 only when every source's shipper is connected and its last
            snapshot and drill succeeded within 2x their expected intervals;
            503 with the reasons as JSON otherwise
  /status   JSON status of every source
Off loopback every route but the timeline page needs
"Authorization: Bearer <ui_token>" (403 without ui_token set);
metrics_open: true leaves /metrics open to scrapers.

tls: {ca: FILE, cert: FILE, key: FILE} (top level, or per source) is how
rediss:// sources and their sentinels are reached (else the --tls-* flags);
the files are read again when they change, at the next connection.

SIGTERM or SIGINT stops scheduling, lets running work finish within the
grace period (grace_period, default 30s) and exits 0.

The configuration is YAML, strict (unknown keys are errors, named by path),
with ${VAR} expanded from the environment; --check-config validates it and
exits (0 valid, 2 invalid). See deploy/redback.yaml for an example.`,
		Example: "  " + agentTry + "\n  redback agent --config /etc/redback/redback.yaml",
		Args:    exactArgs(0, agentTry),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), e, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.config, "config", "", "configuration file (YAML)")
	f.BoolVar(&o.checkConfig, "check-config", false, "validate the configuration, print a summary and exit")
	f.StringVar(&o.listen, "listen", "", "HTTP address for /metrics, /healthz, /status (overrides the file's listen)")
	o.redis.addFlags(f)
	return c
}

// loadAgentConfig reads and validates the file; an invalid file is a usage
// error (exit 2) listing every problem by path.
func loadAgentConfig(e *env, o *agentOpts) (*config.Config, error) {
	if o.config == "" {
		return nil, usagef(agentTry, "--config is required")
	}
	f, err := os.Open(o.config)
	if err != nil {
		return nil, fmt.Errorf("open configuration: %w", err)
	}
	defer f.Close()
	cfg, err := config.Load(f, e.getenv)
	var ce *config.Error
	if errors.As(err, &ce) {
		return nil, usagef(agentTry, "%s: %v", o.config, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.config, err)
	}
	if o.listen != "" {
		cfg.Listen = o.listen
		if err := cfg.Validate(); err != nil {
			return nil, usagef(agentTry, "--listen: %v", err)
		}
	}
	for i := range cfg.Sources {
		cfg.Sources[i].TLS = cfg.SourceTLS(cfg.Sources[i])
	}
	return cfg, nil
}

// sourceTLS is how the agent reaches src over TLS: the config's tls (the
// source's own, else the top-level one), else the --tls-* flags; the files
// are read again when they change.
func sourceTLS(o *agentOpts, src config.Source) redisurl.TLSOptions {
	t := o.redis.tls
	if !strings.HasPrefix(src.Source, "rediss") && !strings.Contains(src.Source, "tls=true") {
		return t // no TLS: the config's tls is for the sources that use it
	}
	if c := src.TLS; c != nil {
		t = redisurl.TLSOptions{CAFile: c.CA, CertFile: c.Cert, KeyFile: c.Key, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	}
	t.Reload = true
	return t
}

func runAgent(ctx context.Context, e *env, o *agentOpts) error {
	cfg, err := loadAgentConfig(e, o)
	if err != nil {
		return err
	}
	if err := checkRedisServer(ctx, cfg); err != nil {
		return err
	}
	if o.checkConfig {
		printConfigSummary(e, cfg)
		return nil
	}
	log := slog.New(slog.NewJSONHandler(e.Err, nil))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ids, err := pack.LoadIdentities("", e.getenv)
	if err != nil {
		return err
	}
	if err := ui.CheckListen(cfg.Listen, cfg.UIToken); err != nil {
		log.Warn("the listener is off loopback without ui_token: every route but the page (and /metrics with metrics_open) answers 403 until ui_token is set", "listen", cfg.Listen)
	}
	a, err := agent.New(agent.Options{
		Identities: ids,
		Config:     cfg,
		Log:        log,
		Registry:   reg,
		OpenRepo:   func(ctx context.Context, u string) (storage.Backend, error) { return openRepo(ctx, e, u) },
		Snapshot: func(ctx context.Context, src config.Source, repo storage.Backend) (*catalog.Snapshot, error) {
			return agentSnapshot(ctx, e, o, log, src, repo)
		},
		SnapshotFromLog: func(ctx context.Context, src config.Source, repo storage.Backend) (*catalog.Snapshot, error) {
			return agentSnapshotFromLog(ctx, log, src, repo, ids)
		},
		Drill: func(ctx context.Context, src config.Source, repo storage.Backend) (*agent.DrillResult, error) {
			return agentDrill(ctx, e, cfg.RedisServer, src, repo)
		},
		NewShipper: func(src config.Source, repo storage.Backend) (agent.Shipper, error) {
			return agentShipperFor(e, o, log, src, repo)
		},
		Cluster: func(ctx context.Context, src config.Source) (bool, error) {
			u, err := redisurl.Parse(src.Source, redisurl.Options{TLS: sourceTLS(o, src), Getenv: e.getenv})
			if err != nil || u.IsSentinel() || u.Network() != "tcp" {
				return false, err
			}
			return cluster.Enabled(ctx, u)
		},
		ClusterShards: func(ctx context.Context, src config.Source) ([]string, error) {
			u, _, err := agentSource(e, o, src)
			if err != nil {
				return nil, err
			}
			return clusterset.ShardNames(ctx, u, src.Name)
		},
		SnapshotSet: func(ctx context.Context, src config.Source, repo storage.Backend, lease ops.ShardLease) (*catalog.Set, error) {
			return agentSnapshotSet(ctx, e, o, log, src, repo, lease)
		},
		SnapshotSetFromLog: func(ctx context.Context, src config.Source, repo storage.Backend, lease ops.ShardLease) (*catalog.Set, error) {
			u, rs, err := agentSource(e, o, src)
			if err != nil {
				return nil, err
			}
			log := log.With("source", src.Name)
			return ops.TakeSetFromLog(ctx, log, repo, u, lease, synth.Options{Pack: pack.Options{Recipients: rs}, Identities: ids},
				clusterset.TakeOptions{Cluster: src.Name})
		},
		NewClusterShipper: func(src config.Source, repo storage.Backend, lease ops.ShardLease) (agent.Shipper, error) {
			return agentClusterShipper(e, o, log, src, repo, lease)
		},
		DrillSet: func(ctx context.Context, src config.Source, repo storage.Backend) (*agent.DrillResult, error) {
			return agentDrillSet(ctx, e, cfg.RedisServer, src, repo)
		},
	})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// agentSource is the URL of a configured source (with its TLS settings)
// and the recipients its snapshots are encrypted to.
func agentSource(e *env, o *agentOpts, src config.Source) (*redisurl.URL, *pack.Recipients, error) {
	u, err := redisurl.Parse(src.Source, redisurl.Options{TLS: sourceTLS(o, src), Getenv: e.getenv})
	if err != nil {
		return nil, nil, err
	}
	rs, err := sourceRecipients(src)
	if err != nil {
		return nil, nil, err
	}
	return u, rs, nil
}

// agentSnapshot takes one snapshot of src through the same code path as
// `redback snapshot`.
func agentSnapshot(ctx context.Context, e *env, o *agentOpts, log *slog.Logger, src config.Source, repo storage.Backend) (*catalog.Snapshot, error) {
	u, p, err := agentSnapshotParams(e, o, src)
	if err != nil {
		return nil, err
	}
	se := *e
	se.log = log.With("source", src.Name)
	p.PreferReplica = true
	p.Store.Backend, p.Store.Log = repo, se.log
	return takeSnapshot(ctx, &se, u, p)
}

// agentSnapshotSet takes one backup set of the cluster src is a node of,
// as `redback snapshot` of a cluster node does.
func agentSnapshotSet(ctx context.Context, e *env, o *agentOpts, log *slog.Logger, src config.Source, repo storage.Backend, lease ops.ShardLease) (*catalog.Set, error) {
	u, p, err := agentSnapshotParams(e, o, src)
	if err != nil {
		return nil, err
	}
	return ops.TakeSet(ctx, log.With("source", src.Name), repo, u, lease, p, clusterset.TakeOptions{Cluster: src.Name, PreferReplica: true})
}

// agentSnapshotParams is the URL of src and what a scheduled snapshot of
// it (or of its cluster) is taken with: its method and the recipients.
func agentSnapshotParams(e *env, o *agentOpts, src config.Source) (*redisurl.URL, snapshotParams, error) {
	u, rs, err := agentSource(e, o, src)
	if err != nil {
		return nil, snapshotParams{}, err
	}
	method := src.Snapshot.Method
	if method == "log" {
		method = "sync" // the fallback when there is no usable log
	}
	return u, snapshotParams{Method: method, Store: snapshot.Options{Pack: pack.Options{Recipients: rs}}}, nil
}

// agentSnapshotFromLog synthesizes a snapshot of src from repo's newest
// snapshot and shipped log, as `redback snapshot --from-log` does.
func agentSnapshotFromLog(ctx context.Context, log *slog.Logger, src config.Source, repo storage.Backend, ids []age.Identity) (*catalog.Snapshot, error) {
	rs, err := sourceRecipients(src)
	if err != nil {
		return nil, err
	}
	res, err := synth.Build(ctx, synth.Options{Backend: repo, Pack: pack.Options{Recipients: rs}, Identities: ids, Log: log.With("source", src.Name)})
	if err != nil {
		return nil, err
	}
	log.Info("snapshot synthesized from the log", "source", src.Name, "id", res.Snapshot.ID, "generation", res.Snapshot.Generation,
		"offset", res.Snapshot.Source.Offset, "base", res.Base, "segments", res.Segments, "commands", res.Commands,
		"scratch_server", res.Server.String(), "scratch_cpu_seconds", res.ScratchCPUSeconds, "scratch_rss_bytes", res.ScratchRSSBytes)
	return res.Snapshot, nil
}

// agentDrill drills the newest verified snapshot of repo, as `redback
// drill` does. Identities come from $REDBACK_IDENTITY_FILE or
// $REDBACK_IDENTITY.
func agentDrill(ctx context.Context, e *env, redisServer string, src config.Source, repo storage.Backend) (*agent.DrillResult, error) {
	idents, err := pack.LoadIdentities("", e.getenv)
	if err != nil {
		return nil, err
	}
	snap, err := drill.Select(ctx, repo, "", time.Time{})
	if err != nil {
		return nil, err
	}
	rep, err := drill.Run(ctx, drill.Options{Backend: repo, Snapshot: snap, Identities: idents, RTOObjective: src.Drill.RTOObjective.D(), RedisServer: redisServer})
	if err != nil {
		return nil, err
	}
	res := &agent.DrillResult{Snapshot: rep.Snapshot, RTO: time.Duration(rep.RTOSeconds * float64(time.Second)), OK: rep.OK}
	for _, c := range rep.Failed() {
		res.Detail = strings.TrimPrefix(res.Detail+"; "+c.Name+": "+c.Detail, "; ")
	}
	return res, nil
}

// agentDrillSet drills the newest backup set of the cluster src is a node
// of, as `redback drill --name CLUSTER` does.
func agentDrillSet(ctx context.Context, e *env, redisServer string, src config.Source, repo storage.Backend) (*agent.DrillResult, error) {
	ids, err := pack.LoadIdentities("", e.getenv)
	if err != nil {
		return nil, err
	}
	set, err := catalog.FindSet(ctx, repo, src.Name, "")
	if err != nil {
		return nil, err
	}
	rep, err := clusterset.DrillSet(ctx, repo, set, clusterset.DrillOptions{Identities: ids, RedisServer: redisServer, RTOObjective: src.Drill.RTOObjective.D()})
	if err != nil {
		return nil, err
	}
	return &agent.DrillResult{Snapshot: set.ID, RTO: time.Duration(rep.RTOSeconds * float64(time.Second)), OK: rep.OK, Detail: rep.Detail}, nil
}

// checkRedisServer proves the configuration's redis_server is a Redis or
// Valkey server binary (it answers --version); a wrong one is a usage
// error, as every other configuration problem.
func checkRedisServer(ctx context.Context, cfg *config.Config) error {
	if cfg.RedisServer == "" {
		return nil
	}
	p, err := exec.LookPath(cfg.RedisServer)
	if err == nil {
		_, err = serverver.Describe(ctx, p)
	}
	if err != nil {
		return usagef(agentTry, "redis_server: %v", err)
	}
	return nil
}

func printConfigSummary(e *env, cfg *config.Config) {
	fmt.Fprintf(e.Out, "configuration OK: %d source(s), listen %s, grace %s, lease ttl %s\n",
		len(cfg.Sources), cfg.Listen, cfg.GracePeriod, cfg.LeaseTTL)
	if cfg.RedisServer != "" {
		b, _ := serverver.Describe(context.Background(), cfg.RedisServer)
		fmt.Fprintf(e.Out, "  scratch server (drills, rebuilds): %s\n", b)
	}
	for _, s := range cfg.Sources {
		when := "every " + s.Snapshot.Every.String()
		if s.Snapshot.Schedule != "" {
			when = "schedule " + s.Snapshot.Schedule
		}
		method := s.Snapshot.Method
		if method == "log" && !s.Ship.Enabled {
			method += " (ship is off: every snapshot falls back to sync)"
		} else if method == "log" {
			method += " (from the shipped log; sync when there is no usable log)"
		}
		ship := "off"
		if s.Ship.Enabled {
			ship = fmt.Sprintf("every %s, ack %s", s.Ship.Interval, s.Ship.Ack)
		}
		drill := "off"
		if s.Drill.Enabled {
			drill = fmt.Sprintf("%s, rto objective %s", s.Drill.Schedule, s.Drill.RTOObjective)
		}
		r := s.Retention
		keep := func(n int) string {
			if n < 0 {
				return "forever"
			}
			return fmt.Sprint(n)
		}
		enc := "none"
		if n := len(s.Encryption.Recipients); n > 0 || s.Encryption.RecipientsFile != "" {
			enc = strings.TrimSpace(fmt.Sprintf("%d recipient(s) %s", n, s.Encryption.RecipientsFile))
		}
		fmt.Fprintf(e.Out, "  %s: %s -> %s\n    snapshot: %s %s\n    ship: %s\n    retention: hourly %s, daily %s, weekly %s, monthly %s, within %s, pitr %s\n    drill: %s\n    encryption: %s\n",
			s.Name, config.Redact(s.Source), config.Redact(s.Repo), method, when, ship,
			keep(r.Hourly), keep(r.Daily), keep(r.Weekly), keep(r.Monthly), r.Within, r.PITR, drill, enc)
	}
}

// sourceRecipients parses a source's encryption recipients (nil: none).
func sourceRecipients(src config.Source) (*pack.Recipients, error) {
	specs := append([]string(nil), src.Encryption.Recipients...)
	if src.Encryption.RecipientsFile != "" {
		specs = append(specs, src.Encryption.RecipientsFile)
	}
	if len(specs) == 0 {
		return nil, nil
	}
	rs, err := pack.ParseRecipients(specs)
	if err != nil {
		return nil, fmt.Errorf("encryption recipients: %w", err)
	}
	return rs, nil
}

// agentShipper adapts a ship.Shipper to the agent's view of a shipper.
type agentShipper struct{ *ship.Shipper }

// Status implements agent.Shipper.
func (a agentShipper) Status() agent.ShipStatus { return shipStatus(a.Stats()) }

// shipStatus is a shipper's Stats as the agent shows them.
func shipStatus(st ship.Stats) agent.ShipStatus {
	return agent.ShipStatus{
		Connected:     st.Connected,
		LagSeconds:    st.LagSeconds,
		LagBytes:      st.LagBytes,
		DurableOffset: st.DurableOffset,
		Reconnects:    st.Reconnects,
		Resets:        st.Resets,
		SpoolBytes:    st.SpoolBytes,
		Generation:    st.Generation,
		LastError:     st.LastError,
		Node:          st.Node,
		Failovers:     st.Failovers,
	}
}

// agentShipperFor builds the shipper of src, as `redback ship` does.
func agentShipperFor(e *env, o *agentOpts, log *slog.Logger, src config.Source, repo storage.Backend) (agent.Shipper, error) {
	u, newShipper, err := agentShipperConfig(e, o, src)
	if err != nil {
		return nil, err
	}
	s := newShipper(repo)
	s.Source, s.Log = u, log.With("source", src.Name)
	return agentShipper{s}, nil
}

// agentShipperConfig parses src's URL and returns how its shippers are
// made (one, or one per shard of a cluster).
func agentShipperConfig(e *env, o *agentOpts, src config.Source) (*redisurl.URL, func(storage.Backend) *ship.Shipper, error) {
	u, rs, err := agentSource(e, o, src)
	if err != nil {
		return nil, nil, err
	}
	ids, err := pack.LoadIdentities("", e.getenv)
	if err != nil {
		return nil, nil, err
	}
	ack := ship.AckProcessed
	if src.Ship.Ack == "durable" {
		ack = ship.AckDurable
	}
	return u, func(repo storage.Backend) *ship.Shipper {
		return &ship.Shipper{
			Source:     u,
			Backend:    repo,
			Pack:       pack.Options{Recipients: rs},
			Identities: ids,
			Interval:   src.Ship.Interval.D(),
			Ack:        ack,
			Tick:       src.Ship.Tick.D(),
			Heartbeat:  src.Ship.Heartbeat.D(),
		}
	}, nil
}

// agentClusterShipper builds the shipper of every shard of the cluster
// src is a node of, as `redback ship` of a cluster node does.
func agentClusterShipper(e *env, o *agentOpts, log *slog.Logger, src config.Source, repo storage.Backend, lease ops.ShardLease) (agent.Shipper, error) {
	u, newShipper, err := agentShipperConfig(e, o, src)
	if err != nil {
		return nil, err
	}
	return clusterShipper{&ops.ClusterShipper{Repo: repo, Seed: u, Cluster: src.Name, Lease: lease, NewShipper: newShipper,
		Log: log.With("cluster", src.Name)}}, nil
}

// clusterShipper adapts an ops.ClusterShipper to the agent's view: its
// Status sums the shards' (connected when every shard is, the largest
// lag), Shards shows each.
type clusterShipper struct{ *ops.ClusterShipper }

// Shards implements agent.ShardedShipper.
func (c clusterShipper) Shards() []agent.ShardStatus {
	var out []agent.ShardStatus
	for _, x := range c.ClusterShipper.Shards() {
		out = append(out, agent.ShardStatus{Source: x.Source, Slots: x.Slots, Primary: x.Primary, ShipStatus: shipStatus(x.Stats)})
	}
	return out
}

// Status implements agent.Shipper.
func (c clusterShipper) Status() agent.ShipStatus {
	shards := c.Shards()
	st := agent.ShipStatus{Connected: len(shards) > 0, Node: c.Seed.Redacted()}
	var down []string
	for _, x := range shards {
		if !x.Connected {
			st.Connected = false
			down = append(down, x.Source)
		}
		st.LagSeconds = max(st.LagSeconds, x.LagSeconds)
		st.LagBytes = max(st.LagBytes, x.LagBytes)
		st.Reconnects += x.Reconnects
		st.Resets += x.Resets
		st.SpoolBytes += x.SpoolBytes
		st.Failovers += x.Failovers
	}
	switch {
	case len(down) > 0:
		st.LastError = "shards not shipping: " + strings.Join(down, ", ")
	case len(shards) == 0:
		st.LastError = "no shard found yet"
	}
	return st
}
