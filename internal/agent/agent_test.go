package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"redback/internal/catalog"
	"redback/internal/config"
	"redback/internal/redistest"
	"redback/internal/snapshot"
	"redback/internal/storage"
	"redback/internal/storage/file"
	"redback/internal/storage/mem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock moves only when told to.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	added   chan struct{}
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC), added: make(chan struct{}, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	select {
	case c.added <- struct{}{}:
	default:
	}
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// waitPending waits until n timers are pending.
func (c *fakeClock) waitPending(t *testing.T, n int) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got := len(c.waiters)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.added:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d pending timers (have %d)", n, got)
		}
	}
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	last := ""
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; last: %s", what, last)
		}
	}
}

func testConfig(source, repo string) *config.Config {
	c := config.Default()
	s := config.DefaultSource()
	s.Name, s.Source, s.Repo = "cache-a", source, repo
	c.Sources = []config.Source{s}
	c.GracePeriod = config.Duration(time.Minute)
	// Long enough that a starved test process still renews in time.
	c.LeaseTTL = config.Duration(30 * time.Second)
	return c
}

func memOpener(b storage.Backend) func(context.Context, string) (storage.Backend, error) {
	return func(context.Context, string) (storage.Backend, error) { return nopClose{b}, nil }
}

// nopClose keeps a shared test backend open when the agent closes it.
type nopClose struct{ storage.Backend }

func (nopClose) Close() error { return nil }

func fakeManifest(ctx context.Context, b storage.Backend, at time.Time) (*catalog.Snapshot, error) {
	id := catalog.NewSnapshotID(at)
	s := &catalog.Snapshot{Format: catalog.FormatVersion, ID: id, StartTime: at, EndTime: at, Verified: true,
		Object: catalog.Object{Key: catalog.SnapshotDataKey(id, false), StoredBytes: 10}}
	if _, err := b.Put(ctx, s.Object.Key, strings.NewReader("0123456789")); err != nil {
		return nil, err
	}
	return s, catalog.PutJSON(ctx, b, catalog.SnapshotManifestKey(id), s)
}

// TestAgent_ForbidAndGrace drives the scheduler with a fake clock: a
// snapshot still running when the next ones are due makes them skipped
// and counted; after cancel, running work gets the grace period and is
// then cancelled, and Run returns nil.
func TestAgent_ForbidAndGrace(t *testing.T) {
	clk := newFakeClock()
	b := mem.New()
	cfg := testConfig("redis://127.0.0.1:1", "mem://")
	cfg.Sources[0].Snapshot.Every = config.Duration(time.Hour)
	cfg.Sources[0].Ship.Enabled = false
	cfg.Sources[0].Drill.Enabled = false
	cfg.Sources[0].Retention = config.Retention{Hourly: 1}
	var calls atomic.Int32
	release := make(chan struct{}, 10)
	started := make(chan struct{}, 10)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Config: cfg, Clock: clk, Listener: ln, OpenRepo: memOpener(b),
		Snapshot: func(ctx context.Context, src config.Source, repo storage.Backend) (*catalog.Snapshot, error) {
			calls.Add(1)
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return fakeManifest(ctx, repo, clk.Now())
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-started // first run at start: nothing in the repository yet
	for i := 0; i < 2; i++ {
		clk.waitPending(t, 1)
		clk.Advance(time.Hour)
	}
	clk.waitPending(t, 1)
	st := a.Status().Sources[0].Snapshot
	if st.Skipped != 2 || !st.Running || calls.Load() != 1 {
		t.Fatalf("want 2 skipped while running, 1 call: %+v calls=%d", st, calls.Load())
	}
	release <- struct{}{}
	eventually(t, 10*time.Second, "first snapshot done", func() (bool, string) {
		s := a.Status().Sources[0].Snapshot
		return !s.Running && s.LastID != "", fmt.Sprintf("%+v", s)
	})
	clk.Advance(time.Hour)
	<-started // the next due run starts
	// SIGTERM while it runs: no new runs; the running one is cancelled
	// when the grace period ends.
	cancel()
	clk.waitPending(t, 2) // the scheduler's stale timer and the grace timer
	clk.Advance(2 * time.Minute)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after the grace period")
	}
	if calls.Load() != 2 {
		t.Fatalf("calls %d", calls.Load())
	}
	st = a.Status().Sources[0].Snapshot
	if st.Failures != 1 || !strings.Contains(st.LastError, "context canceled") {
		t.Fatalf("cancelled run not recorded: %+v", st)
	}
	rec, err := catalog.ReadLease(t.Context(), catalog.NamedSource(cfg.Sources[0].Name).Backend(b))
	if err != nil || !rec.Released {
		t.Fatalf("lease not released: %+v %v", rec, err)
	}
}

// pingShipper stands in for the log shipper: connected while the source
// answers PING.
type pingShipper struct {
	addr      string
	connected atomic.Bool
	flushed   atomic.Bool
}

func (p *pingShipper) Run(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, DisableIdentity: true})
	defer c.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		p.connected.Store(c.Ping(ctx).Err() == nil)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (p *pingShipper) Flush(ctx context.Context) error {
	p.flushed.Store(true)
	return nil
}

func (p *pingShipper) Status() ShipStatus {
	return ShipStatus{Connected: p.connected.Load(), LagSeconds: 0.25, Generation: "0123", Resets: 1, Node: "redis://127.0.0.1:6390", Failovers: 2}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestAgent_EndToEnd runs the agent against a real redis-server and a file
// repository: snapshots (BGSAVE through the real pipeline) on a 1 s
// schedule with retention, drills, /metrics, /healthz flipping to 503 when
// the source dies and back when it returns, a second agent refused by the
// lease, and a clean shutdown.
func TestAgent_EndToEnd(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	for i := 0; i < 100; i++ {
		if err := srv.Client().Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	cfg := testConfig(srv.URL(), "file://"+dir)
	sc := &cfg.Sources[0]
	sc.Snapshot = config.Snapshot{Method: "bgsave", Every: config.Duration(time.Second)}
	sc.Retention = config.Retention{Hourly: 1}
	sc.Drill.Schedule = "@every 1s"
	open := func(_ context.Context, u string) (storage.Backend, error) { return file.New(u) }
	var shippers []*pingShipper
	opts := func(ln net.Listener) Options {
		return Options{Config: cfg, Listener: ln, OpenRepo: open,
			Snapshot: func(ctx context.Context, src config.Source, repo storage.Backend) (*catalog.Snapshot, error) {
				c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DisableIdentity: true})
				defer c.Close()
				f, err := snapshot.TakeBGSave(ctx, c, snapshot.BGSaveOptions{Timeout: 10 * time.Second})
				if err != nil {
					return nil, err
				}
				defer f.Close()
				return snapshot.Store(ctx, f, snapshot.Options{Backend: repo, Method: "bgsave", Source: catalog.Source{Address: srv.URL()}})
			},
			NewShipper: func(src config.Source, repo storage.Backend) (Shipper, error) {
				p := &pingShipper{addr: srv.Addr()}
				shippers = append(shippers, p)
				return p, nil
			},
			Drill: func(ctx context.Context, src config.Source, repo storage.Backend) (*DrillResult, error) {
				latest, err := catalog.Latest(ctx, repo)
				if err != nil {
					return nil, err
				}
				return &DrillResult{Snapshot: latest.ID, RTO: 250 * time.Millisecond, OK: true}, nil
			},
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	a, err := New(opts(ln))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()

	health := func(want int) func() (bool, string) {
		return func() (bool, string) {
			code, body := get(t, base+"/healthz")
			return code == want, fmt.Sprintf("%d %s", code, body)
		}
	}
	eventually(t, 30*time.Second, "healthy", health(200))
	if _, body := get(t, base+"/healthz"); !strings.Contains(body, `"cache-a": "redis://127.0.0.1:6390"`) {
		t.Errorf("/healthz does not say which node cache-a follows: %s", body)
	}
	eventually(t, 30*time.Second, "retention deleting", func() (bool, string) {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, `redback_retention_deletions_total{source="cache-a"}`) &&
			!strings.Contains(body, `redback_retention_deletions_total{source="cache-a"} 0`), body
	})
	// The drill and the shipper run on their own schedules: wait for the
	// state asserted (by time), never assume it came with retention.
	var metrics string
	eventually(t, 30*time.Second, "every metric", func() (bool, string) {
		_, metrics = get(t, base+"/metrics")
		var lacks []string
		for _, want := range []string{
			`redback_snapshot_last_success_timestamp_seconds{source="cache-a"}`,
			`redback_ship_lag_seconds{source="cache-a"} 0.25`,
			`redback_drill_last_success_timestamp_seconds{source="cache-a"}`,
			`redback_drill_last_result{source="cache-a"} 1`,
			`redback_snapshot_expected_interval_seconds{source="cache-a"} 1`,
			`redback_ship_generation_info{generation="0123",source="cache-a"} 1`,
			`redback_source_resets_total{source="cache-a"} 1`,
			`redback_ship_failovers_total{source="cache-a"} 2`,
			`redback_ship_node_info{node="redis://127.0.0.1:6390",source="cache-a"} 1`,
			`redback_repository_bytes{source="cache-a"}`,
			`redback_snapshot_failures_total{source="cache-a"}`,
		} {
			if !strings.Contains(metrics, want) {
				lacks = append(lacks, want)
			}
		}
		return len(lacks) == 0, fmt.Sprintf("/metrics lacks %v", lacks)
	})
	if strings.Contains(metrics, `redback_snapshot_last_success_timestamp_seconds{source="cache-a"} 0`+"\n") {
		t.Error("no snapshot recorded in /metrics")
	}

	// A second agent on the same repository is refused and told who holds it.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o2 := opts(ln2)
	o2.Holder = "second-agent"
	a2, err := New(o2)
	if err != nil {
		t.Fatal(err)
	}
	err = a2.Run(ctx)
	var held *catalog.LeaseHeldError
	if !errors.As(err, &held) || held.Holder != a.holder {
		t.Fatalf("second agent: want LeaseHeldError naming %s, got %v", a.holder, err)
	}

	// The source dies: /healthz says so; it comes back: healthy again.
	srv.Kill()
	eventually(t, 30*time.Second, "unhealthy after kill", health(503))
	_, body := get(t, base+"/healthz")
	if !strings.Contains(body, "cache-a: ") {
		t.Errorf("healthz reasons do not name the source: %s", body)
	}
	srv.Restart()
	eventually(t, 30*time.Second, "healthy after restart", health(200))

	var st Status
	_, sbody := get(t, base+"/status")
	if err := json.Unmarshal([]byte(sbody), &st); err != nil || len(st.Sources) != 1 || st.Sources[0].Snapshot.LastID == "" {
		t.Fatalf("/status: %v %s", err, sbody)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("agent did not stop")
	}
	if len(shippers) != 1 || !shippers[0].flushed.Load() {
		t.Errorf("shipper not flushed at shutdown (%d shippers)", len(shippers))
	}
	fb, _ := file.New(dir)
	b := catalog.NamedSource(sc.Name).Backend(fb)
	snaps, _, err := catalog.ListSnapshots(ctx, b)
	if err != nil || len(snaps) == 0 || len(snaps) > 3 {
		t.Fatalf("repository after retention: %d snapshots, %v", len(snaps), err)
	}
	rec, err := catalog.ReadLease(ctx, b)
	if err != nil || !rec.Released {
		t.Fatalf("lease not released: %+v %v", rec, err)
	}
}

func TestAgent_HealthReasonsWhenPiecesMissing(t *testing.T) {
	cfg := testConfig("redis://:hunter2@127.0.0.1:1", "mem://")
	a, err := New(Options{Config: cfg, OpenRepo: memOpener(mem.New())})
	if err != nil {
		t.Fatal(err)
	}
	a.started = a.clock.Now()
	for _, s := range a.sources {
		s.repo = mem.New()
		a.seed(t.Context(), s)
	}
	a.snapshotOnce(t.Context(), a.sources[0])
	st := a.Status()
	got := strings.Join(st.Reasons, "\n")
	for _, want := range []string{"shipping is enabled but not available", "drills are enabled but not available", "snapshots are not available"} {
		if !strings.Contains(got, want) {
			t.Errorf("reasons lack %q:\n%s", want, got)
		}
	}
	js, _ := json.Marshal(st)
	if strings.Contains(string(js), "hunter2") {
		t.Fatalf("status leaks the password: %s", js)
	}
}

// TestAgent_Heartbeat pings only while healthy.
func TestAgent_Heartbeat(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		t.Run(fmt.Sprint("healthy=", healthy), func(t *testing.T) {
			var hits atomic.Int32
			mux := http.NewServeMux()
			mux.HandleFunc("/ping/", func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
			hs := &http.Server{Handler: mux}
			hl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = hs.Serve(hl) }()
			defer hs.Close()

			cfg := testConfig("redis://127.0.0.1:1", "mem://")
			cfg.Sources[0].Ship.Enabled = false
			cfg.Sources[0].Drill.Enabled = false
			cfg.Heartbeat = config.Heartbeat{URL: "http://" + hl.Addr().String() + "/ping/secret-token", Interval: config.Duration(20 * time.Millisecond)}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			snapped := make(chan struct{}, 100)
			a, err := New(Options{Config: cfg, Listener: ln, OpenRepo: memOpener(mem.New()),
				Snapshot: func(ctx context.Context, src config.Source, repo storage.Backend) (*catalog.Snapshot, error) {
					defer func() { snapped <- struct{}{} }()
					if !healthy {
						return nil, errors.New("source down")
					}
					return fakeManifest(ctx, repo, time.Now())
				}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			<-snapped
			if healthy {
				eventually(t, 10*time.Second, "heartbeat pings", func() (bool, string) { return hits.Load() >= 2, fmt.Sprint(hits.Load()) })
			} else {
				// Several heartbeat intervals pass while unhealthy.
				eventually(t, 10*time.Second, "unhealthy", func() (bool, string) { return !a.Status().Healthy, "" })
				timer := time.NewTimer(200 * time.Millisecond)
				<-timer.C
				if n := hits.Load(); n != 0 {
					t.Errorf("pinged %d times while unhealthy", n)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
