package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"golang.org/x/sync/errgroup"

	"redback/internal/catalog"
	"redback/internal/config"
	"redback/internal/ops"
	"redback/internal/scratch"
	"redback/internal/storage"
	"redback/internal/storage/cache"
	"redback/internal/synth"
)

// Shipper ships one source's replication stream into its repository.
// Run blocks until ctx is done (shutdown or a lost lease); an error return
// makes the agent log it and restart Run after a back-off. Status must be
// safe to call concurrently with Run.
type Shipper interface {
	Run(ctx context.Context) error
	Status() ShipStatus
}

// Flusher is implemented by shippers that hold data not yet uploaded when
// Run returns. On shutdown the agent calls Flush once after Run returned,
// with a context that ends with the grace period (or a lost lease).
type Flusher interface {
	Flush(ctx context.Context) error
}

// ShipStatus is a shipper's view for /metrics, /healthz and /status.
type ShipStatus struct {
	Connected     bool    `json:"connected"`
	LagSeconds    float64 `json:"lag_seconds"`
	LagBytes      int64   `json:"lag_bytes"`
	DurableOffset int64   `json:"durable_offset"`
	Reconnects    int64   `json:"reconnects"`
	// Resets counts new generations marked as a reset: the source came
	// back empty (or drastically smaller) under a new replid.
	Resets     int64  `json:"resets"`
	SpoolBytes int64  `json:"spool_bytes"`
	Generation string `json:"generation,omitempty"`
	LastError  string `json:"last_error,omitempty"`
	// Node is the server the shipper follows (redacted URL): for a
	// redis+sentinel:// source, the primary the sentinels named.
	Node string `json:"node,omitempty"`
	// Failovers counts the failovers followed without a full resync.
	Failovers int64 `json:"failovers"`
}

// Pinner is implemented by shippers whose log depends on snapshots that
// retention must keep (catalog.Policy.Pinned).
type Pinner interface {
	Pinned(id string) (bool, string)
}

// DrillResult is the outcome of one drill.
type DrillResult struct {
	Snapshot string        `json:"snapshot"`
	RTO      time.Duration `json:"rto"`
	// OK is false when the drill ran but failed a check or missed the RTO
	// objective; Detail says which.
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Options configure an Agent. Config and OpenRepo are required.
type Options struct {
	Config *config.Config
	// Log receives JSON logs in production; nil discards.
	Log *slog.Logger
	// Registry gets the agent's metrics; nil makes a fresh one.
	Registry *prometheus.Registry
	// Clock defaults to the real clock.
	Clock Clock
	// Listener, when set, is used instead of listening on Config.Listen
	// (tests pass 127.0.0.1:0). Run closes it.
	Listener net.Listener
	// OpenRepo opens a repository URL; the agent closes what it opens.
	OpenRepo func(ctx context.Context, url string) (storage.Backend, error)
	// Snapshot takes one verified snapshot of src into repo and returns its
	// manifest. nil: snapshots are not available in this build.
	Snapshot func(ctx context.Context, src config.Source, repo storage.Backend) (*catalog.Snapshot, error)
	// SnapshotFromLog synthesizes a snapshot of src from repo's newest
	// snapshot and shipped log (snapshot method log) without contacting the
	// source. An error wrapping a *synth.NoLogError (no usable log) or
	// scratch.ErrNoServer makes the agent take a normal snapshot with
	// Snapshot instead. nil: not available in this build.
	SnapshotFromLog func(ctx context.Context, src config.Source, repo storage.Backend) (*catalog.Snapshot, error)
	// NewShipper makes the shipper of src. nil: shipping is not available.
	NewShipper func(src config.Source, repo storage.Backend) (Shipper, error)
	// Cluster says whether src is a node of a Redis Cluster (asked once at
	// the start for a source with cluster: auto). nil: no source is.
	Cluster func(ctx context.Context, src config.Source) (bool, error)
	// ClusterShards names the shard sources of the cluster src is a node
	// of as it is now (clusterset.ShardNames); the agent takes their
	// leases at the start. nil: only the shards the repository holds are
	// leased at the start.
	ClusterShards func(ctx context.Context, src config.Source) ([]string, error)
	// SnapshotSet takes one backup set of the cluster src is a node of
	// into repo (the repository), each shard written through lease. nil:
	// clusters are not backed up by snapshots in this build.
	SnapshotSet func(ctx context.Context, src config.Source, repo storage.Backend, lease ops.ShardLease) (*catalog.Set, error)
	// SnapshotSetFromLog publishes a backup set of the cluster src is a
	// node of whose shards' snapshots are synthesized from their shipped
	// logs (snapshot method log), each shard written through lease. An
	// error wrapping a *synth.NoLogError or scratch.ErrNoServer makes the
	// agent take the set with SnapshotSet instead. nil: not available.
	SnapshotSetFromLog func(ctx context.Context, src config.Source, repo storage.Backend, lease ops.ShardLease) (*catalog.Set, error)
	// NewClusterShipper makes the shipper of every shard of the cluster
	// src is a node of (it should implement ShardedShipper), writing into
	// repo (the repository) through lease. nil: not available.
	NewClusterShipper func(src config.Source, repo storage.Backend, lease ops.ShardLease) (Shipper, error)
	// DrillSet drills the newest backup set of the cluster src is a node
	// of, from repo (the repository). nil: cluster sources are not drilled.
	DrillSet func(ctx context.Context, src config.Source, repo storage.Backend) (*DrillResult, error)
	// Drill runs one restore drill of src from repo. nil: drills are not
	// available.
	Drill func(ctx context.Context, src config.Source, repo storage.Backend) (*DrillResult, error)
	// HTTPClient pings the heartbeat URL; nil uses a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// Holder is the lease holder id; empty means catalog.NewHolderID().
	Holder string
	// Identities decrypt encrypted log segments for the timeline's event
	// scan; without them, encrypted logs show no events.
	Identities []age.Identity
}

// Agent is the daemon. Make it with New and call Run once.
type Agent struct {
	opts    Options
	cfg     *config.Config
	log     *slog.Logger
	clock   Clock
	reg     *prometheus.Registry
	m       *metrics
	sources []*source
	started time.Time
	holder  string
}

// source is the runtime state of one configured source.
type source struct {
	cfg      config.Source
	repo     storage.Backend
	cached   *cache.Backend // repo for the timeline's reads: manifests cached
	shipper  Shipper
	snapSch  cron.Schedule
	drillSch cron.Schedule
	secret   string // the source password, scrubbed from error texts
	// shards is set for a node of a Redis Cluster: the whole cluster is
	// backed up (sets, one stream per shard), each shard a source of the
	// repository written under its lease; repo is then the repository.
	shards *shardLeases

	mu    sync.Mutex
	snap  jobState
	drill jobState
	ret   retentionState
	ship  struct {
		lastErr string
	}
	rto     time.Duration
	copies  []*copyState // one per copy_to target
	fromLog logState     // snapshot method log
}

// logState is the bookkeeping of snapshots synthesized from the log.
type logState struct {
	// Snapshot, Generation and Offset are the newest synthesized snapshot.
	Snapshot   string `json:"snapshot,omitempty"`
	Generation string `json:"generation,omitempty"`
	Offset     int64  `json:"offset"`
	// Fallbacks counts normal snapshots taken instead, by reason.
	Fallbacks map[string]int64 `json:"fallbacks,omitempty"`
	// LastFallback says why the last fallback happened.
	LastFallback string `json:"last_fallback,omitempty"`
}

// jobState is the bookkeeping of one scheduled job.
type jobState struct {
	Running     bool          `json:"running"`
	LastAttempt time.Time     `json:"last_attempt,omitzero"`
	LastSuccess time.Time     `json:"last_success,omitzero"`
	LastError   string        `json:"last_error,omitempty"`
	LastID      string        `json:"last_snapshot,omitempty"`
	Next        time.Time     `json:"next,omitzero"`
	Interval    time.Duration `json:"-"`
	IntervalS   float64       `json:"expected_interval_seconds"`
	Skipped     int64         `json:"skipped"`
	Failures    int64         `json:"failures"`
}

type retentionState struct {
	LastRun   time.Time `json:"last_run,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	Deleted   int64     `json:"deleted"`
	Failures  int64     `json:"failures"`
	KeptBytes int64     `json:"kept_bytes"`
	Snapshots int       `json:"snapshots"`
}

// New checks opts and the configuration; it starts nothing.
func New(opts Options) (*Agent, error) {
	if opts.Config == nil {
		return nil, errors.New("agent: no configuration")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.OpenRepo == nil {
		return nil, errors.New("agent: no OpenRepo")
	}
	a := &Agent{opts: opts, cfg: opts.Config, log: opts.Log, clock: opts.Clock, reg: opts.Registry, holder: opts.Holder}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.clock == nil {
		a.clock = realClock{}
	}
	if a.reg == nil {
		a.reg = prometheus.NewRegistry()
	}
	if a.holder == "" {
		a.holder = catalog.NewHolderID()
	}
	for _, sc := range a.cfg.Sources {
		s := &source{cfg: sc}
		if sc.Snapshot.Schedule != "" {
			sch, err := config.ParseSchedule(sc.Snapshot.Schedule)
			if err != nil {
				return nil, err
			}
			s.snapSch = sch
		} else {
			s.snapSch = everySchedule(sc.Snapshot.Every.D())
		}
		if sc.Drill.Enabled {
			sch, err := config.ParseSchedule(sc.Drill.Schedule)
			if err != nil {
				return nil, err
			}
			s.drillSch = sch
		}
		if u, err := url.Parse(sc.Source); err == nil && u.User != nil {
			s.secret, _ = u.User.Password()
		}
		a.sources = append(a.sources, s)
	}
	a.m = newMetrics(a.reg, a)
	return a, nil
}

// Registry is where the agent's metrics are registered.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// scrub removes the source password from an error text.
func (s *source) scrub(err error) string {
	msg := err.Error()
	if s.secret != "" {
		msg = strings.ReplaceAll(msg, s.secret, "xxxxx")
		msg = strings.ReplaceAll(msg, url.QueryEscape(s.secret), "xxxxx")
	}
	return msg
}

// errGrace cancels work that outlived the grace period.
var errGrace = errors.New("grace period over")

// Run starts everything and blocks until ctx is cancelled and running
// work finished (or the grace period ran out), or until a lease is lost.
// It returns nil after a clean stop; a lost lease, a lease held by another
// agent or an unusable listen address is an error.
func (a *Agent) Run(ctx context.Context) (err error) {
	a.started = a.clock.Now()
	ln := a.opts.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", a.cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", a.cfg.Listen, err)
		}
	}
	defer ln.Close()

	// Open each repository once; take each source's lease before any
	// write. Every write of a source goes through its lease's guard: it
	// stops when the lease is lost, and when the grace period is over
	// (hard), even an upload that runs on a context of its own.
	hard, hardCancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer hardCancel(nil)
	repos := map[string]storage.Backend{}
	leases := map[string]*catalog.Lease{}
	var targets []storage.Backend // copy_to repositories
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for name, l := range leases {
			if rerr := l.Release(rctx); rerr != nil && !errors.Is(rerr, catalog.ErrLeaseLost) {
				a.log.Warn("release lease", "source", name, "err", rerr)
			}
		}
		for _, s := range a.sources {
			if s.shards != nil {
				s.shards.stop()
				s.shards.release(rctx)
			}
		}
		for _, b := range repos {
			_ = b.Close()
		}
		for _, b := range targets {
			_ = b.Close()
		}
	}()
	for _, s := range a.sources {
		b, ok := repos[s.cfg.Repo]
		if !ok {
			b, err = a.opts.OpenRepo(ctx, s.cfg.Repo)
			if err != nil {
				return fmt.Errorf("source %s: open repository: %w", s.cfg.Name, err)
			}
			repos[s.cfg.Repo] = b
		}
		if a.isCluster(ctx, s) {
			if err := a.initCluster(ctx, s, b, hard); err != nil {
				return err
			}
			if err := a.openCopies(ctx, s, &copyState{from: b, cluster: s.cfg.Name}, &targets); err != nil {
				return err
			}
			continue
		}
		ref, err := catalog.InitSource(ctx, b, s.cfg.Name, config.Redact(s.cfg.Source))
		if err != nil {
			return fmt.Errorf("source %s: %w", s.cfg.Name, err)
		}
		view := ref.Backend(b)
		l, err := catalog.AcquireLease(ctx, view, a.holder, a.cfg.LeaseTTL.D())
		if err != nil {
			return fmt.Errorf("source %s: %w", s.cfg.Name, err)
		}
		leases[s.cfg.Name] = l
		if l.TookOver != "" {
			a.log.Warn("took over the lease of a writer that is gone", "source", s.cfg.Name, "holder", l.TookOver)
		}
		a.log.Info("lease taken", "source", s.cfg.Name, "repo", b.Location(), "holder", a.holder, "ttl", a.cfg.LeaseTTL.String())
		s.repo = l.Guard(storage.Guard(view, hard, func() error { return nil }))
		s.cached = cache.New(view, cache.Options{})
		if err := a.openCopies(ctx, s, &copyState{from: b, include: ref.Holds}, &targets); err != nil {
			return err
		}
		if a.opts.NewShipper != nil && s.cfg.Ship.Enabled {
			s.shipper, err = a.opts.NewShipper(s.cfg, s.repo)
			if err != nil {
				return fmt.Errorf("source %s: shipper: %w", s.cfg.Name, err)
			}
		}
		a.seed(ctx, s)
	}

	leaseCtx, stopLeases := context.WithCancel(hard)
	defer stopLeases()
	lg, lctx := errgroup.WithContext(leaseCtx)
	for _, l := range leases {
		lg.Go(func() error { return l.Run(lctx) })
	}
	for _, s := range a.sources {
		if s.shards != nil {
			s.shards.start(func(l *catalog.Lease) { lg.Go(func() error { return l.Run(lctx) }) })
		}
	}
	work, wctx := errgroup.WithContext(lctx)
	// stop ends scheduling: SIGTERM (ctx) or lost lease (wctx).
	stop, stopCancel := context.WithCancel(wctx)
	defer stopCancel()
	unhook := context.AfterFunc(ctx, stopCancel)
	defer unhook()

	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	a.log.Info("agent started", "listen", ln.Addr().String(), "sources", len(a.sources))

	for _, s := range a.sources {
		work.Go(func() error { return a.schedule(stop, wctx, work, s, jobSnapshot, s.snapSch, a.snapshotOnce) })
		if s.drillSch != nil {
			work.Go(func() error { return a.schedule(stop, wctx, work, s, jobDrill, s.drillSch, a.drillOnce) })
		}
		if s.shipper != nil {
			work.Go(func() error { return a.superviseShipper(stop, wctx, s) })
		}
		for _, c := range s.copies {
			work.Go(func() error { return a.copyLoop(stop, wctx, s, c) })
		}
		if !s.cfg.Ship.Enabled {
			continue
		}
		if s.shipper == nil {
			a.log.Warn("shipping is enabled but not available in this build; /healthz reports it", "source", s.cfg.Name)
		}
	}
	if a.cfg.Heartbeat.URL != "" {
		work.Go(func() error { return a.heartbeat(stop) })
	}

	// Grace: once ctx ends, running work has GracePeriod to finish.
	workDone := make(chan struct{})
	graceDone := make(chan struct{})
	go func() {
		defer close(graceDone)
		select {
		case <-ctx.Done():
		case <-workDone:
			return
		}
		a.log.Info("stopping: no new work; waiting for running work", "grace", a.cfg.GracePeriod.String())
		select {
		case <-a.clock.After(a.cfg.GracePeriod.D()):
			a.log.Warn("grace period over: cancelling running work")
			hardCancel(errGrace)
		case <-workDone:
		}
	}()
	werr := work.Wait()
	close(workDone)
	<-graceDone

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	_ = srv.Shutdown(sctx)
	cancel()
	if serr := <-srvDone; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		a.log.Error("http server", "err", serr)
	}
	stopLeases()
	lerr := lg.Wait()
	switch {
	case lerr != nil:
		return lerr
	case werr != nil && !errors.Is(werr, context.Canceled):
		return werr
	}
	a.log.Info("agent stopped")
	return nil
}

// seed initialises a source's state from its repository, so a restart
// does not take an unneeded snapshot or report a stale one as missing.
func (a *Agent) seed(ctx context.Context, s *source) {
	n := s.cfg.Name
	now := a.clock.Now()
	s.snap.Interval = interval(s.snapSch, now)
	s.snap.IntervalS = s.snap.Interval.Seconds()
	a.m.snapInterval.WithLabelValues(n).Set(s.snap.IntervalS)
	for _, c := range []*prometheus.CounterVec{a.m.snapTotal, a.m.snapFailures, a.m.snapSkipped, a.m.drillFailures, a.m.retDeletions, a.m.retFailures} {
		c.WithLabelValues(n)
	}
	a.m.snapLast.WithLabelValues(n).Set(0)
	a.m.drillLast.WithLabelValues(n).Set(0)
	a.m.drillResult.WithLabelValues(n).Set(-1)
	a.m.drillObj.WithLabelValues(n).Set(s.cfg.Drill.RTOObjective.D().Seconds())
	a.m.healthy.WithLabelValues(n).Set(0)
	if s.drillSch != nil {
		s.drill.Interval = interval(s.drillSch, now)
		s.drill.IntervalS = s.drill.Interval.Seconds()
	}
	if s.shards != nil {
		a.seedSets(ctx, s)
		return
	}
	snaps, _, err := catalog.ListSnapshots(ctx, s.repo)
	if err != nil {
		a.log.Warn("list snapshots", "source", n, "err", err)
		return
	}
	var bytes int64
	for _, sn := range snaps {
		bytes += sn.Object.StoredBytes
	}
	a.m.repoBytes.WithLabelValues(n).Set(float64(bytes))
	a.m.repoSnapshots.WithLabelValues(n).Set(float64(len(snaps)))
	for _, sn := range snaps { // newest first
		if sn.Verified {
			s.snap.LastSuccess = sn.EndTime
			s.snap.LastID = sn.ID
			a.m.snapLast.WithLabelValues(n).Set(float64(sn.EndTime.UnixNano()) / 1e9)
			break
		}
	}
	for _, sn := range snaps {
		if sn.Verified && sn.FromLog() {
			a.noteFromLog(s, sn)
			break
		}
	}
}

// noteFromLog records sn as the newest snapshot synthesized from the log.
func (a *Agent) noteFromLog(s *source, sn *catalog.Snapshot) {
	s.mu.Lock()
	s.fromLog.Snapshot, s.fromLog.Generation, s.fromLog.Offset = sn.ID, sn.Generation, sn.Source.Offset
	s.mu.Unlock()
	a.m.logOffset.WithLabelValues(s.cfg.Name).Set(float64(sn.Source.Offset))
}

// takeSnapshot takes one snapshot of s by its method. Method log
// synthesizes it from the shipped log; when there is no usable log
// (shipping off, a gap, a generation without a base, no scratch server)
// a normal snapshot is taken instead, logged with the reason and counted
// in redback_snapshot_fallback_total{reason}.
func (a *Agent) takeSnapshot(ctx context.Context, s *source) (*catalog.Snapshot, error) {
	if s.cfg.Snapshot.Method != "log" {
		return a.opts.Snapshot(ctx, s.cfg, s.repo)
	}
	var snap *catalog.Snapshot
	ok, err := a.tryFromLog(s, a.opts.SnapshotFromLog != nil, "a normal snapshot", func() (err error) {
		snap, err = a.opts.SnapshotFromLog(ctx, s.cfg, s.repo)
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case ok:
		a.noteFromLog(s, snap)
		return snap, nil
	}
	return a.opts.Snapshot(ctx, s.cfg, s.repo)
}

// takeSet takes one backup set of s, a cluster source, by its method.
// Method log synthesizes each shard's snapshot from its shipped log; when
// a shard has no usable log, the set is taken by sync instead, recorded
// as takeSnapshot records it.
func (a *Agent) takeSet(ctx context.Context, s *source) (*catalog.Set, error) {
	if a.opts.SnapshotSet == nil {
		return nil, errors.New("backup sets of a cluster are not available in this build")
	}
	if s.cfg.Snapshot.Method == "log" {
		var set *catalog.Set
		ok, err := a.tryFromLog(s, a.opts.SnapshotSetFromLog != nil, "the set by sync", func() (err error) {
			set, err = a.opts.SnapshotSetFromLog(ctx, s.cfg, s.repo, s.shards.lease)
			return err
		})
		switch {
		case err != nil:
			return nil, err
		case ok:
			s.mu.Lock()
			s.fromLog.Snapshot, s.fromLog.Generation, s.fromLog.Offset = set.ID, "", 0
			s.mu.Unlock()
			return set, nil
		}
	}
	return a.opts.SnapshotSet(ctx, s.cfg, s.repo, s.shards.lease)
}

// tryFromLog runs synthesize when snapshots from the log are available
// and s ships. It returns true when synthesize succeeded, false (nil
// error) when there is no usable log, after logging the reason (instead
// says what is taken instead), counting it in
// redback_snapshot_fallback_total{reason} and in /status; another error
// of synthesize is returned.
func (a *Agent) tryFromLog(s *source, available bool, instead string, synthesize func() error) (bool, error) {
	var reason, detail string
	switch {
	case !available:
		reason, detail = "unavailable", "snapshots from the log are not available in this build"
	case s.shipper == nil:
		reason, detail = "shipping_off", "shipping is off for this source, so there is no log to synthesize from"
	default:
		err := synthesize()
		var nl *synth.NoLogError
		switch {
		case errors.As(err, &nl):
			reason, detail = nl.Reason, nl.Detail
		case errors.Is(err, scratch.ErrNoServer):
			reason, detail = "no_scratch_server", s.scrub(err)
		case err != nil:
			return false, err
		default:
			return true, nil
		}
	}
	n := s.cfg.Name
	a.log.Warn("no usable log to synthesize the snapshot from: taking "+instead+" instead", "source", n, "reason", reason, "detail", detail)
	a.m.snapFallback.WithLabelValues(n, reason).Inc()
	s.mu.Lock()
	if s.fromLog.Fallbacks == nil {
		s.fromLog.Fallbacks = map[string]int64{}
	}
	s.fromLog.Fallbacks[reason]++
	s.fromLog.LastFallback = reason + ": " + detail
	s.mu.Unlock()
	return false, nil
}

// jobKind names a scheduled job of a source (in logs as "job").
type jobKind string

const (
	jobSnapshot jobKind = "snapshot"
	jobDrill    jobKind = "drill"
)

// schedule runs job on sch until stop is done. A due run while the
// previous one is still going is skipped and counted (Forbid). Runs are
// started in work and get runCtx, which outlives stop by the grace period.
func (a *Agent) schedule(stop, runCtx context.Context, work *errgroup.Group, s *source, kind jobKind, sch cron.Schedule, job func(context.Context, *source)) error {
	st := &s.snap
	if kind == jobDrill {
		st = &s.drill
	}
	now := a.clock.Now()
	var next time.Time
	if _, ok := sch.(everySchedule); ok {
		s.mu.Lock()
		last := st.LastSuccess
		s.mu.Unlock()
		next = now
		if !last.IsZero() && last.Add(st.Interval).After(now) {
			next = last.Add(st.Interval)
		}
	} else {
		next = sch.Next(now)
	}
	var running sync.Mutex // held while a run is going: TryLock is Forbid
	for {
		if next.IsZero() {
			a.log.Error("schedule has no next run; not scheduling", "source", s.cfg.Name, "job", kind)
			<-stop.Done()
			return nil
		}
		s.mu.Lock()
		st.Next = next
		s.mu.Unlock()
		select {
		case <-stop.Done():
			return nil
		case <-a.clock.After(next.Sub(a.clock.Now())):
		}
		if running.TryLock() {
			s.mu.Lock()
			st.Running = true
			s.mu.Unlock()
			work.Go(func() error {
				defer running.Unlock()
				job(runCtx, s)
				s.mu.Lock()
				st.Running = false
				s.mu.Unlock()
				return nil
			})
		} else {
			s.mu.Lock()
			st.Skipped++
			s.mu.Unlock()
			if kind == jobSnapshot {
				a.m.snapSkipped.WithLabelValues(s.cfg.Name).Inc()
			}
			a.log.Warn("previous run still going: skipped", "source", s.cfg.Name, "job", kind)
		}
		// The next due time after this one; runs missed while the clock
		// jumped are not made up.
		due := next
		now := a.clock.Now()
		for i := 0; i < 1_000_000 && !next.IsZero() && !next.After(now); i++ {
			next = sch.Next(next)
		}
		if next.Equal(due) {
			next = sch.Next(now)
		}
	}
}

// snapshotOnce takes a snapshot and then applies retention.
func (a *Agent) snapshotOnce(ctx context.Context, s *source) {
	n := s.cfg.Name
	start := a.clock.Now()
	s.mu.Lock()
	s.snap.LastAttempt = start
	s.mu.Unlock()
	var (
		snap *catalog.Snapshot
		set  *catalog.Set
		err  error
	)
	sctx := ctx
	if t := s.cfg.Snapshot.Timeout.D(); t > 0 {
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	switch {
	case s.shards != nil:
		set, err = a.takeSet(sctx, s)
	case a.opts.Snapshot == nil:
		err = errors.New("snapshots are not available in this build")
	default:
		snap, err = a.takeSnapshot(sctx, s)
	}
	end := a.clock.Now()
	if err != nil {
		msg := s.scrub(err)
		s.mu.Lock()
		s.snap.LastError = msg
		s.snap.Failures++
		s.mu.Unlock()
		a.m.snapFailures.WithLabelValues(n).Inc()
		a.log.Error("snapshot failed", "source", n, "dur", end.Sub(start).String(), "err", msg)
		return
	}
	id := ""
	if set != nil {
		id = set.ID
	} else {
		id = snap.ID
	}
	s.mu.Lock()
	s.snap.LastError = ""
	s.snap.LastSuccess = end
	s.snap.LastID = id
	s.mu.Unlock()
	a.m.snapTotal.WithLabelValues(n).Inc()
	a.m.snapLast.WithLabelValues(n).Set(float64(end.UnixNano()) / 1e9)
	a.m.snapDuration.WithLabelValues(n).Set(end.Sub(start).Seconds())
	if set != nil {
		a.log.Info("backup set taken", "source", n, "id", set.ID, "shards", len(set.Shards), "keys", set.Keys, "digest", set.Digest, "dur", end.Sub(start).String())
		a.retention(ctx, s)
		return
	}
	a.m.snapSize.WithLabelValues(n).Set(float64(snap.Object.StoredBytes))
	a.log.Info("snapshot taken", "source", n, "id", snap.ID, "method", snap.Method, "bytes", snap.Object.StoredBytes, "dur", end.Sub(start).String())
	a.retention(ctx, s)
}

// Policy converts a source's retention configuration.
func Policy(r config.Retention) catalog.Policy {
	return catalog.Policy{Hourly: r.Hourly, Daily: r.Daily, Weekly: r.Weekly, Monthly: r.Monthly, Within: r.Within.D(), PITR: r.PITR.D()}
}

func (a *Agent) retention(ctx context.Context, s *source) {
	n := s.cfg.Name
	if s.shards != nil {
		a.retainSets(ctx, s)
		return
	}
	p := Policy(s.cfg.Retention)
	if pn, ok := s.shipper.(Pinner); ok {
		p.Pinned = pn.Pinned
	}
	res, err := catalog.Prune(ctx, s.repo, p, a.clock.Now(), catalog.PruneOptions{})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ret.LastRun = a.clock.Now()
	if res != nil {
		s.ret.Deleted += int64(len(res.Deleted))
		s.ret.Failures += int64(res.Failures)
		s.ret.KeptBytes = res.KeptBytes
		s.ret.Snapshots = len(res.Decisions) - len(res.Deleted)
		a.m.retDeletions.WithLabelValues(n).Add(float64(len(res.Deleted)))
		a.m.retFailures.WithLabelValues(n).Add(float64(res.Failures))
		a.m.repoBytes.WithLabelValues(n).Set(float64(res.KeptBytes))
		a.m.repoSnapshots.WithLabelValues(n).Set(float64(s.ret.Snapshots))
	}
	if err != nil {
		if res == nil || res.Failures == 0 {
			s.ret.Failures++
			a.m.retFailures.WithLabelValues(n).Inc()
		}
		s.ret.LastError = s.scrub(err)
		a.log.Error("retention failed", "source", n, "err", s.ret.LastError)
		return
	}
	s.ret.LastError = ""
	if len(res.Deleted) > 0 || res.TrimmedSegments > 0 {
		a.log.Info("retention", "source", n, "deleted", len(res.Deleted), "log_segments", res.TrimmedSegments, "bytes", res.FreedBytes)
	}
}

func (a *Agent) drillOnce(ctx context.Context, s *source) {
	n := s.cfg.Name
	start := a.clock.Now()
	s.mu.Lock()
	s.drill.LastAttempt = start
	s.mu.Unlock()
	var res *DrillResult
	var err error
	drill := a.opts.Drill
	if s.shards != nil {
		drill = a.opts.DrillSet
	}
	if drill == nil {
		err = errors.New("drills are not available in this build")
	} else {
		res, err = drill(ctx, s.cfg, s.repo)
	}
	end := a.clock.Now()
	if err == nil && res != nil && !res.OK {
		err = fmt.Errorf("drill failed: %s", res.Detail)
	}
	if err == nil && res == nil {
		err = errors.New("drill returned no result")
	}
	if res != nil {
		a.m.drillRTO.WithLabelValues(n).Set(res.RTO.Seconds())
		s.mu.Lock()
		s.rto = res.RTO
		s.mu.Unlock()
	}
	if err != nil {
		msg := s.scrub(err)
		s.mu.Lock()
		s.drill.LastError = msg
		s.drill.Failures++
		s.mu.Unlock()
		a.m.drillFailures.WithLabelValues(n).Inc()
		a.m.drillResult.WithLabelValues(n).Set(0)
		a.log.Error("drill failed", "source", n, "dur", end.Sub(start).String(), "err", msg)
		return
	}
	s.mu.Lock()
	s.drill.LastError = ""
	s.drill.LastSuccess = end
	s.drill.LastID = res.Snapshot
	s.mu.Unlock()
	a.m.drillResult.WithLabelValues(n).Set(1)
	a.m.drillLast.WithLabelValues(n).Set(float64(end.UnixNano()) / 1e9)
	a.log.Info("drill passed", "source", n, "snapshot", res.Snapshot, "rto", res.RTO.String())
}

// superviseShipper runs the shipper until stop, restarting it with a
// capped back-off when it fails, then flushes it within flushCtx.
func (a *Agent) superviseShipper(stop, flushCtx context.Context, s *source) error {
	defer func() {
		f, ok := s.shipper.(Flusher)
		if !ok {
			return
		}
		if err := f.Flush(flushCtx); err != nil {
			a.log.Error("flush shipper at shutdown", "source", s.cfg.Name, "err", s.scrub(err))
		}
	}()
	backoff := time.Second
	for {
		err := s.shipper.Run(stop)
		if stop.Err() != nil {
			return nil
		}
		msg := "returned without error"
		if err != nil {
			msg = s.scrub(err)
		}
		s.mu.Lock()
		s.ship.lastErr = msg
		s.mu.Unlock()
		a.log.Error("shipper stopped; restarting", "source", s.cfg.Name, "err", msg, "backoff", backoff.String())
		select {
		case <-stop.Done():
			return nil
		case <-a.clock.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// heartbeat pings the heartbeat URL every interval while all is healthy.
func (a *Agent) heartbeat(stop context.Context) error {
	client := a.opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	failing := false
	for {
		select {
		case <-stop.Done():
			return nil
		case <-a.clock.After(a.cfg.Heartbeat.Interval.D()):
		}
		if st := a.Status(); !st.Healthy {
			continue
		}
		req, err := http.NewRequestWithContext(stop, http.MethodGet, a.cfg.Heartbeat.URL, nil)
		if err != nil {
			a.log.Error("heartbeat: bad URL") // the URL may carry a token: never logged
			continue
		}
		resp, err := client.Do(req)
		ok := err == nil && resp.StatusCode < 300
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if !ok && !failing && stop.Err() == nil {
			status := "no response"
			if resp != nil {
				status = resp.Status
			}
			a.log.Warn("heartbeat ping failed", "status", status) // logged once per failure streak
		}
		failing = !ok
	}
}
