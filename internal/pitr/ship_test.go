package pitr_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
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

// Issue 23, defect 2: a write made while the shipper was down is re-sent by
// the primary after the restart (PSYNC +CONTINUE). Its time is only known
// to lie between the last stored time and the restart: a restore --at a
// point inside refuses instead of restoring the pre-outage state, and
// --uncertain latest gives the state at that point.
func TestPITR_WriteDuringShipperOutage(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	u, err := redisurl.Parse(src.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := mem.New()
	runShip := func() (*ship.Shipper, func()) {
		sh := &ship.Shipper{Source: u, Backend: b, Interval: 20 * time.Millisecond}
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sh.Run(sctx) }()
		return sh, func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Error(err)
				}
			case <-time.After(30 * time.Second):
				t.Error("shipper did not stop")
			}
		}
	}
	sh, stop := runShip()
	for i := 0; i < 3000 && !sh.Stats().Connected; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	c := src.Client()
	if err := c.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitDurable(t, src, sh)
	stop()
	time.Sleep(50 * time.Millisecond)
	if err := c.Set(ctx, "k", "during", 0).Err(); err != nil {
		t.Fatal(err)
	}
	dT := src.Digest(ctx)
	time.Sleep(50 * time.Millisecond)
	at := time.Now()
	time.Sleep(50 * time.Millisecond)
	sh, stop = runShip()
	waitDurable(t, src, sh)
	if err := c.Set(ctx, "k", "after", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitDurable(t, src, sh)
	stop()

	_, err = pitr.NewPlan(ctx, b, pitr.AtTime(at), pitr.Options{})
	var ue *pitr.UncertainError
	if !errors.As(err, &ue) || ue.Commands < 1 || !ue.From.Before(at) || !ue.To.After(at) {
		var lines []string
		_ = pitr.Log(ctx, b, pitr.Filter{}, pitr.Options{}, func(c *pitr.Command) error {
			lines = append(lines, c.String())
			return nil
		})
		t.Fatalf("--at a point of the outage: %v (want a refusal naming the interval); log:\n%s", err, strings.Join(lines, "\n"))
	}
	tg := pitr.AtTime(at)
	tg.Uncertain = pitr.UncertainLatest
	p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := toDir(t, p); got != dT {
		t.Errorf("--uncertain latest: digest %s, want the state at the point %s", got, dT)
	}
	ws, err := pitr.Windows(ctx, b)
	if err != nil || len(ws) != 1 || len(ws[0].Uncertain) != 1 {
		t.Errorf("windows %+v %v", ws, err)
	}
}

// waitDurable waits until sh stored everything src wrote.
func waitDurable(t *testing.T, src *redistest.Server, sh *ship.Shipper) {
	t.Helper()
	want := replOffset(t, src)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 30000 && time.Now().Before(deadline); i++ {
		if st := sh.Stats(); st.Generation != "" && st.DurableOffset >= want {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("shipper did not make offset %d durable: %+v", want, sh.Stats())
}
