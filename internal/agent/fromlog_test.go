package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"redback/internal/catalog"
	"redback/internal/config"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/ship"
	"redback/internal/snapshot"
	"redback/internal/storage"
	"redback/internal/storage/mem"
	"redback/internal/synth"
)

// realShipper adapts a ship.Shipper for the agent.
type realShipper struct{ *ship.Shipper }

func (r realShipper) Status() ShipStatus {
	st := r.Stats()
	return ShipStatus{Connected: st.Connected, DurableOffset: st.DurableOffset, Generation: st.Generation}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAgent_SnapshotsFromLog runs the agent with snapshot method log and
// a real shipper against a real source under writes: it synthesizes
// snapshots from the log (the source does not fork for them), reports the
// newest one's offset and how far it trails the log; a gap in the log
// makes it take a normal snapshot instead, with a log line and
// redback_snapshot_fallback_total{reason="gap"}.
func TestAgent_SnapshotsFromLog(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "16mb")
	redistest.Populate(t, src, 100)
	u, err := redisurl.Parse(src.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := mem.New()
	cfg := testConfig(src.URL(), "mem://")
	sc := &cfg.Sources[0]
	sc.Snapshot = config.Snapshot{Method: "log", Every: config.Duration(time.Second)}
	sc.Ship = config.Ship{Enabled: true, Interval: config.Duration(20 * time.Millisecond), Ack: "processed"}
	sc.Drill.Enabled = false
	// A PITR window of an hour: retention keeps the whole log of this
	// test (with none it would drop the log before the newest synthesized
	// snapshot, and the gap made below with it).
	sc.Retention = config.Retention{Within: config.Duration(time.Hour), PITR: config.Duration(time.Hour)}
	logs := &syncBuffer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	a, err := New(Options{Config: cfg, Listener: ln, OpenRepo: memOpener(b), Log: slog.New(slog.NewTextHandler(logs, nil)),
		Snapshot: func(ctx context.Context, _ config.Source, repo storage.Backend) (*catalog.Snapshot, error) {
			return snapshot.TakeSync(ctx, u, snapshot.Options{Backend: repo, Method: "sync"}, nil)
		},
		SnapshotFromLog: func(ctx context.Context, _ config.Source, repo storage.Backend) (*catalog.Snapshot, error) {
			res, err := synth.Build(ctx, synth.Options{Backend: repo, TempDir: tmp})
			if err != nil {
				return nil, err
			}
			return res.Snapshot, nil
		},
		NewShipper: func(_ config.Source, repo storage.Backend) (Shipper, error) {
			return realShipper{&ship.Shipper{Source: u, Backend: repo, Interval: 20 * time.Millisecond}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("Run did not return")
		}
	}()
	c := src.Client()
	view := catalog.NamedSource(sc.Name).Backend(b)
	fromLog := func() []*catalog.Snapshot {
		snaps, _, err := catalog.ListSnapshots(t.Context(), view)
		if err != nil {
			t.Fatal(err)
		}
		var out []*catalog.Snapshot
		for _, s := range snaps {
			if s.FromLog() {
				out = append(out, s)
			}
		}
		return out
	}
	forks := int64(-1)
	for i := 0; ; i++ {
		if err := c.Incr(t.Context(), "counter").Err(); err != nil {
			t.Fatal(err)
		}
		n := len(fromLog())
		if n >= 1 && forks < 0 {
			forks = forksOf(t, src)
		}
		if n >= 3 {
			break
		}
		if i > 3000 {
			t.Fatalf("no 3 snapshots from the log after %d writes; status %+v\n%s", i, a.Status().Sources[0], logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := forksOf(t, src); got != forks {
		t.Errorf("total_forks %d after snapshots from the log, %d before", got, forks)
	}
	st := a.Status().Sources[0]
	if st.FromLog == nil || st.FromLog.Snapshot == "" || st.FromLog.Offset <= 0 {
		t.Fatalf("status %+v", st.FromLog)
	}
	eventually(t, 20*time.Second, "the trail in /status", func() (bool, string) {
		fl := a.Status().Sources[0].FromLog
		return fl != nil && fl.TrailBytes != nil, fmt.Sprintf("%+v", fl)
	})
	if v := testutil.ToFloat64(a.m.logOffset.WithLabelValues(sc.Name)); v <= 0 {
		t.Errorf("redback_snapshot_log_offset %v", v)
	}
	if n, err := testutil.GatherAndCount(a.Registry(), "redback_snapshot_log_trail_bytes"); err != nil || n != 1 {
		t.Errorf("redback_snapshot_log_trail_bytes: %d series, %v", n, err)
	}

	// A gap: the next snapshots are normal ones, said and counted.
	gens, err := catalog.ListGenerations(t.Context(), view)
	if err != nil || len(gens) == 0 {
		t.Fatalf("generations %v %v", gens, err)
	}
	var segs []*catalog.Segment
	for i := 0; i < 3000; i++ {
		if err := c.Incr(t.Context(), "counter").Err(); err != nil {
			t.Fatal(err)
		}
		if segs, err = catalog.ListSegments(t.Context(), view, gens[len(gens)-1].ID); err != nil {
			t.Fatal(err)
		}
		if len(segs) >= 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	mid := segs[len(segs)/2]
	if err := view.Delete(t.Context(), catalog.SegmentKey(mid.Generation, mid.Start, mid.End)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "a fallback for the gap", func() (bool, string) {
		v := testutil.ToFloat64(a.m.snapFallback.WithLabelValues(sc.Name, synth.ReasonGap))
		return v >= 1 && bytes.Contains([]byte(logs.String()), []byte("reason=gap")), fmt.Sprintf("%v %+v", v, a.Status().Sources[0].FromLog)
	})
	eventually(t, 60*time.Second, "a normal snapshot after the gap", func() (bool, string) {
		snaps, _, _ := catalog.ListSnapshots(t.Context(), view)
		return len(snaps) > 0 && snaps[0].Method == "sync" && snaps[0].Generation == "", fmt.Sprintf("%+v", snaps[0])
	})
	if fl := a.Status().Sources[0].FromLog; fl.Fallbacks[synth.ReasonGap] < 1 || fl.LastFallback == "" {
		t.Errorf("status %+v", fl)
	}
}

func forksOf(t *testing.T, s *redistest.Server) int64 {
	t.Helper()
	txt, err := s.Client().Info(t.Context(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64 = -1
	for _, line := range bytes.Split([]byte(txt), []byte("\n")) {
		if v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("total_forks:")); ok {
			fmt.Sscan(string(v), &n)
		}
	}
	if n < 0 {
		t.Fatal("no total_forks")
	}
	return n
}
