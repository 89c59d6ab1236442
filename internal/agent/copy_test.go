package agent

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/config"
	"redback/internal/storage"
	"redback/internal/storage/mem"
)

// copy_to keeps a second repository current: snapshots appear there, and
// /metrics and /status report the copy's lag.
func TestAgent_CopyTo(t *testing.T) {
	cfg := testConfig("redis://127.0.0.1:1", "mem://primary")
	s := &cfg.Sources[0]
	s.Ship.Enabled, s.Drill.Enabled = false, false
	s.Snapshot.Every = config.Duration(time.Second)
	s.CopyTo = []string{"mem://second"}
	s.CopyInterval = config.Duration(time.Second)
	primary, second := mem.New(), mem.New()
	open := func(_ context.Context, u string) (storage.Backend, error) {
		if u == "mem://second" {
			return nopClose{second}, nil
		}
		return nopClose{primary}, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Config: cfg, Listener: ln, OpenRepo: open,
		Snapshot: func(ctx context.Context, _ config.Source, repo storage.Backend) (*catalog.Snapshot, error) {
			return fakeManifest(ctx, repo, time.Now())
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	eventually(t, 20*time.Second, "a snapshot in the copy", func() (bool, string) {
		repo, err := catalog.OpenRepository(t.Context(), second)
		if err != nil {
			return false, err.Error()
		}
		ref, ok := repo.Source("cache-a")
		if !ok {
			return false, "no source cache-a in the copy"
		}
		snaps, _, err := catalog.ListSnapshots(t.Context(), ref.Backend(second))
		return err == nil && len(snaps) > 0, ""
	})
	eventually(t, 20*time.Second, "the copy reported", func() (bool, string) {
		st := a.Status()
		if len(st.Sources) != 1 || len(st.Sources[0].Copies) != 1 {
			return false, "no copies in status"
		}
		c := st.Sources[0].Copies[0]
		return c.Target == second.Location() && !c.LastSuccess.IsZero() && c.Copied >= 2 && c.LagSeconds < 60, ""
	})
	code, body := get(t, "http://"+ln.Addr().String()+"/metrics")
	if code != 200 || !strings.Contains(body, `redback_copy_lag_seconds{source="cache-a",target="mem://"}`) ||
		!strings.Contains(body, "redback_copy_last_success_timestamp_seconds") {
		t.Errorf("/metrics (%d) lacks the copy series:\n%s", code, body)
	}
}
