package ship

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/redisurl"
	"redback/internal/storage/mem"
)

// The shipper publishes time markers that come back through the stream and
// are stored as "#TICK" annotations; the log replays to the source's data.
func TestShipper_TickMarkersStored(t *testing.T) {
	src := startSource(t)
	b := mem.New()
	s := newShipper(t, src, b)
	s.Tick = 20 * time.Millisecond
	r := run(t, s)
	ctx := t.Context()
	for i := 0; i < 20; i++ {
		if err := src.Client().Set(ctx, "k", i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	caughtUp(t, src, s)
	r.stop(t)
	gens := checkRepo(t, b, src.Digest(ctx))
	segs, err := catalog.ListSegments(ctx, b, gens[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	ticks := 0
	for _, sg := range segs {
		data := readObject(t, b, sg.Object)
		ticks += bytes.Count(data, []byte("\n#TICK:"))
		if bytes.Contains(data, []byte(catalog.TickChannel)) {
			t.Fatalf("segment %s stores a marker PUBLISH:\n%q", sg.Object.Key, data)
		}
	}
	if ticks == 0 {
		t.Fatal("no time marker stored")
	}
}

// A source whose ACL refuses PUBLISH turns the markers off with one log
// line; shipping goes on.
func TestShipper_TickRefusedByACL(t *testing.T) {
	src := startSource(t)
	ctx := t.Context()
	if err := src.Client().Do(ctx, "ACL", "SETUSER", "shipper", "on", ">s3cret-pw", "+@all", "-publish", "-spublish", "~*", "&*").Err(); err != nil {
		t.Fatal(err)
	}
	u, err := redisurl.Parse("redis://shipper:s3cret-pw@"+src.Addr(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	b := mem.New()
	s := &Shipper{Source: u, Backend: b, Interval: 100 * time.Millisecond, Tick: 20 * time.Millisecond, FlushTimeout: 30 * time.Second,
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	r := run(t, s)
	waitFor(t, 30*time.Second, "the log line that turns the markers off", func() bool {
		return strings.Contains(logs.String(), "time markers off")
	})
	for i := 0; i < 10; i++ {
		if err := src.Client().Set(ctx, "k", i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // markers would be due meanwhile
	}
	caughtUp(t, src, s)
	r.stop(t)
	out := logs.String()
	if n := strings.Count(out, "time markers off"); n != 1 || !strings.Contains(out, "+publish &__redback__:*") || strings.Contains(out, "s3cret-pw") {
		t.Errorf("%d markers-off lines:\n%s", n, out)
	}
	if st := s.Stats(); st.LastError != "" {
		t.Errorf("LastError %q", st.LastError)
	}
	checkRepo(t, b, src.Digest(ctx))
}

// Issue 17 §3: with storage idle, a segment is cut early enough to be
// durable within about the interval (less the store time and the cutter's
// tick, never younger than half the interval), and at once when the last
// cut is an interval ago; never more often than that while writes
// trickle; while segments wait for storage, at the interval.
func TestCutDue(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		age, since, store time.Duration
		flush, want       bool
	}{
		{age: 700 * ms, since: 700 * ms, flush: true, want: false},
		{age: 900 * ms, since: 900 * ms, flush: true, want: true},                         // interval - tick
		{age: 600 * ms, since: 600 * ms, store: 300 * ms, flush: true, want: true},        // slow storage: earlier
		{age: 500 * ms, since: 500 * ms, store: 3 * time.Second, flush: true, want: true}, // never younger than interval/2 ...
		{age: 499 * ms, since: 499 * ms, store: 3 * time.Second, flush: true, want: false},
		{age: 900 * ms, since: 900 * ms, want: false}, // segments wait for storage: at the interval
		{age: time.Second, since: time.Second, want: true},
		{age: 10 * ms, since: 5 * time.Second, flush: true, want: true}, // a write after a quiet spell
		{age: 10 * ms, since: 5 * time.Second, want: false},             // ... not while a segment is stored
		{age: 10 * ms, since: 400 * ms, flush: true, want: false},       // at most one segment per interval
	} {
		if got := cutDue(time.Second, 100*ms, c.age, c.since, c.store, c.flush); got != c.want {
			t.Errorf("cutDue(1s, 100ms, age %s, since %s, store %s, flush %v) = %v, want %v", c.age, c.since, c.store, c.flush, got, c.want)
		}
	}
}

// A fresh primary answers master_repl_offset:0: an offset, not a missing
// field (ship warned that it could not bound re-sent commands).
func TestSourceOffset_FreshPrimary(t *testing.T) {
	src := startSource(t)
	u, err := redisurl.Parse(src.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	off, hi, err := sourceOffset(t.Context(), u)
	if err != nil || off != 0 || hi <= 0 {
		t.Fatalf("offset %d time %d err %v", off, hi, err)
	}
}
