package pitr_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"redback/internal/pitr"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/ship"
	"redback/internal/storage/mem"
)

// TestPITR_Shipped restores from a log written by the real shipper.
func TestPITR_Shipped(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	redistest.Populate(t, src, 40)
	u, err := redisurl.Parse(src.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := mem.New()
	sh := &ship.Shipper{Source: u, Backend: b, Interval: 20 * time.Millisecond}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(sctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("shipper did not stop")
			}
		}
	}
	defer stop()
	durable := func() {
		t.Helper()
		want := replOffset(t, src)
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; i < 30000; i++ {
			st := sh.Stats()
			if st.Generation != "" && st.DurableOffset >= want {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("shipper did not make offset %d durable: %+v", want, sh.Stats())
	}
	durable()
	d0 := src.Digest(ctx)
	sc := newClients(t, src)
	type mark struct {
		at     time.Time
		off    int64
		digest string
	}
	var marks []mark
	for _, ph := range phases {
		ph(t, sc)
		durable()
		ws, err := pitr.Windows(ctx, b)
		if err != nil || len(ws) != 1 {
			t.Fatalf("windows %v %v", ws, err)
		}
		marks = append(marks, mark{ws[0].To, replOffset(t, src), src.Digest(ctx)})
		for j := 0; j < 1000 && time.Now().UnixMilli() <= ws[0].To.UnixMilli(); j++ {
			time.Sleep(time.Millisecond)
		}
	}
	sc.do(t, 0, "SET", "before_flush", "1")
	dFlush := src.Digest(ctx)
	sc.do(t, 0, "FLUSHALL")
	sc.do(t, 0, "SET", "after", "1")
	durable()
	stop()

	ws, err := pitr.Windows(ctx, b)
	if err != nil || len(ws) != 1 || ws[0].Problem != "" || len(ws[0].Gaps) != 0 {
		t.Fatalf("windows %+v %v", ws, err)
	}
	check := func(name string, tg pitr.Target, want string) *pitr.Plan {
		t.Helper()
		p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{})
		if err != nil {
			t.Fatalf("%s: plan: %v", name, err)
		}
		if got := toRedis(t, p); got != want {
			t.Errorf("%s: --to-redis digest %s, want %s (plan offset %d)", name, got, want, p.Offset)
		}
		if got := toDir(t, p); got != want {
			t.Errorf("%s: --to-dir digest %s, want %s", name, got, want)
		}
		return p
	}
	check("base", pitr.AtTime(ws[0].From), d0)
	for i, m := range marks {
		check("mark "+strconv.Itoa(i), pitr.AtTime(m.at), m.digest)
		check("offset "+strconv.Itoa(i), pitr.AtOffset(m.off), m.digest)
	}
	p := check("before flushall", pitr.BeforeCommand(pitr.CommandMatch{Name: "FLUSHALL"}), dFlush)
	if p.Match == nil || p.Match.Name != "FLUSHALL" {
		t.Fatalf("match %+v", p.Match)
	}
}
