package ship

import (
	"context"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/storage"
	"redback/internal/storage/mem"
)

// countObjects counts the objects of the repository (every key).
func countObjects(t *testing.T, b storage.Backend) int {
	t.Helper()
	n := 0
	if err := b.List(context.Background(), "", func(storage.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func readQuiet(t *testing.T, b storage.Backend, gen string) *catalog.Quiet {
	t.Helper()
	q, err := catalog.ReadQuiet(context.Background(), b, gen)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// Issue 13 item 5: an idle source (the primary PINGs every second here,
// time markers on) cuts no segment for its PINGs: the repository's object
// count stays the same over several PING periods while the heartbeat
// (quiet.json) is rewritten in place and keeps the durable offset at the
// primary's. The newest durable point (pitr windows, --at latest) is the
// primary's offset, restores digest-equal, and a restarted shipper
// resumes the idle generation without a gap.
func TestShipper_IdleHeartbeat(t *testing.T) {
	ctx := context.Background()
	src := startSource(t, "--repl-ping-replica-period", "1")
	b := mem.New()
	s := newShipper(t, src, b)
	s.Interval = 200 * time.Millisecond
	s.Heartbeat = 2 * time.Second
	s.Tick = 100 * time.Millisecond
	r := run(t, s)
	load(t, src, 1, 200)
	caughtUp(t, src, s)
	gen := s.Stats().Generation

	// Idle: the stored log stops growing; the heartbeat follows the
	// primary's offset.
	var objects int
	waitFor(t, 60*time.Second, "a heartbeat", func() bool {
		q := readQuiet(t, b, gen)
		if q == nil || q.Offset <= q.From {
			return false
		}
		objects = countObjects(t, b)
		return true
	})
	first := readQuiet(t, b, gen)
	segsBefore, err := catalog.ListSegments(ctx, b, gen)
	if err != nil {
		t.Fatal(err)
	}
	pings := replOffset(t, src)
	waitFor(t, 60*time.Second, "6 PING periods", func() bool { return replOffset(t, src) >= pings+6*14 })
	caughtUp(t, src, s) // through a heartbeat: no segment holds the PINGs
	last := readQuiet(t, b, gen)
	if last.Offset <= first.Offset || last.UnixMs <= first.UnixMs || last.From != first.From {
		t.Fatalf("heartbeat not updated in place: first %+v, last %+v", first, last)
	}
	segs, err := catalog.ListSegments(ctx, b, gen)
	if err != nil {
		t.Fatal(err)
	}
	if n := countObjects(t, b); n != objects || len(segs) != len(segsBefore) {
		t.Fatalf("idle for %d bytes of PINGs: %d objects, %d segments; were %d and %d", replOffset(t, src)-pings, n, len(segs), objects, len(segsBefore))
	}
	if end := segs[len(segs)-1].End; last.From != end {
		t.Fatalf("heartbeat from %d, stored log ends at %d", last.From, end)
	}
	st := s.Stats()
	if st.LagSeconds > 0 {
		t.Errorf("idle shipper reports lag %.1f s", st.LagSeconds)
	}
	ws, err := pitr.Windows(ctx, b)
	if err != nil || len(ws) != 1 || len(ws[0].Gaps) != 0 {
		t.Fatalf("windows %+v %v", ws, err)
	}
	if ws[0].ToOffset < last.Offset || ws[0].To.UnixMilli() != last.UnixMs {
		t.Fatalf("newest durable point %d at %s, heartbeat %+v", ws[0].ToOffset, ws[0].To, last)
	}
	want := src.Digest(ctx)
	if got := pitrPlanDigest(t, b, pitr.Latest()); got != want {
		t.Fatalf("--at latest: digest %s, source %s", got, want)
	}
	if got := pitrPlanDigest(t, b, pitr.AtTime(ws[0].To)); got != want {
		t.Fatalf("--at the heartbeat's time: digest %s, source %s", got, want)
	}
	r.stop(t)

	// A restart resumes from the stored end (the primary re-sends the
	// PINGs) and the next write is stored after them, without a gap.
	s2 := newShipper(t, src, b)
	s2.Interval, s2.Heartbeat = 200*time.Millisecond, 2*time.Second
	r2 := run(t, s2)
	waitFor(t, 30*time.Second, "connected", func() bool { return s2.Stats().Connected })
	if err := src.Client().Set(ctx, "after-idle", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, src, s2)
	r2.stop(t)
	if st := s2.Stats(); st.Generations != 0 || st.Generation != gen {
		t.Fatalf("restart started a new generation: %+v", st)
	}
	gens := checkRepo(t, b, src.Digest(ctx))
	if len(gens) != 1 {
		t.Fatalf("generations %+v", gens)
	}
	if got := pitrPlanDigest(t, b, pitr.Latest()); got != src.Digest(ctx) {
		t.Fatalf("--at latest after the restart: digest %s, source %s", got, src.Digest(ctx))
	}
	t.Logf("idle: %d objects over %d bytes of PINGs and markers", objects, last.Offset-first.Offset)
}
