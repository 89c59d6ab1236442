package pitr_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"redback/internal/pitr"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/restore"
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
	check("base", pitr.AtOffset(ws[0].FromOffset), d0)
	// The window's edges restore (issue 23). From is the base's time unless
	// the source's offset was read after the first phase's writes (a
	// loaded machine): they then ran at times only bounded, and From is
	// where that bound ends.
	if p, err := pitr.NewPlan(ctx, b, pitr.AtTime(ws[0].From), pitr.Options{}); err != nil {
		t.Errorf("--at window From: %v", err)
	} else if p.Offset == ws[0].FromOffset {
		check("window from", pitr.AtTime(ws[0].From), d0)
	}
	check("window to", pitr.AtTime(ws[0].To), src.Digest(ctx))
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

// Issue 23: every moment `list` shows restores. The shipper starts while a
// writer runs, so the primary buffers writes while it sends the base: they
// ran at times only bounded by an interval holding the base's time.
// Restores --at exactly the window's From and To succeed; To is
// digest-equal to the source, and From is a prefix of the writes, none
// issued after From, digest-equal to the source's final state without the
// later writes.
func TestPITR_WindowEdgesShipped(t *testing.T) {
	windowEdgesShipped(t, 0)
}

// The same with time markers (every 10 ms): a marker's time is a lower
// bound of when its PUBLISH ran, so only the next marker, sent once its
// reply had come back, bounds the commands before it; a write issued
// after a marker's time is never restored --at it.
func TestPITR_WindowEdgesShippedTicks(t *testing.T) {
	windowEdgesShipped(t, 10*time.Millisecond)
}

func windowEdgesShipped(t *testing.T, tick time.Duration) {
	ctx := t.Context()
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	redistest.Populate(t, src, 20000) // a transfer that takes a while
	u, err := redisurl.Parse(src.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The writer: SET w:<i> with the time each was issued.
	var (
		mu     sync.Mutex
		issued []int64
	)
	wctx, wstop := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		c := src.Client()
		for i := 0; i < 200000 && wctx.Err() == nil; i++ {
			mu.Lock()
			issued = append(issued, time.Now().UnixMilli())
			mu.Unlock()
			if err := c.Set(ctx, fmt.Sprintf("w:%06d", i), i, 0).Err(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { wstop(); <-wdone }()
	for i := 0; i < 3000; i++ { // the writer is running
		mu.Lock()
		n := len(issued)
		mu.Unlock()
		if n > 100 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b := mem.New()
	sh := &ship.Shipper{Source: u, Backend: b, Interval: 20 * time.Millisecond, Tick: tick}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(sctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("shipper did not stop")
		}
	}()
	waitDurable(t, src, sh)
	wstop()
	<-wdone
	waitDurable(t, src, sh)
	dEnd := src.Digest(ctx)
	mu.Lock()
	writes := len(issued)
	mu.Unlock()

	ws, err := pitr.Windows(ctx, b)
	if err != nil || len(ws) != 1 || ws[0].Problem != "" {
		t.Fatalf("windows %+v %v", ws, err)
	}
	w := ws[0]
	t.Logf("window %s; %d writes", w.String(), writes)
	restoreAt := func(at time.Time) *redistest.Server {
		t.Helper()
		p, err := pitr.NewPlan(ctx, b, pitr.AtTime(at), pitr.Options{})
		if err != nil {
			t.Fatalf("--at %s (a moment list shows): %v", at.Format(time.RFC3339Nano), err)
		}
		dir := t.TempDir()
		if _, err := p.ToDir(ctx, dir, restore.Options{}); err != nil {
			t.Fatal(err)
		}
		return redistest.StartInDir(t, dir, "--appendonly", "yes")
	}
	to := restoreAt(w.To)
	if got := to.Digest(ctx); got != dEnd {
		t.Fatalf("--at window To: digest %s, want the source's %s", got, dEnd)
	}
	from := restoreAt(w.From)
	n := 0
	for ; n < writes; n++ {
		if from.Client().Exists(ctx, fmt.Sprintf("w:%06d", n)).Val() == 0 {
			break
		}
	}
	if n > 0 && issued[n-1] > w.From.UnixMilli() {
		var log []string
		_ = pitr.Log(ctx, b, pitr.Filter{}, pitr.Options{}, func(c *pitr.Command) error {
			if v, _ := strconv.Atoi(string(c.Args[len(c.Args)-1])); c.Name == "SET" && v >= n-3 && v < n+3 {
				log = append(log, fmt.Sprintf("offset %d %s %s (issued %d)", c.Offset, c.When(), pitr.Display(c.Args, 20, 3), issued[v]))
			}
			return nil
		})
		t.Errorf("--at window From %d holds write %d, issued at %d, after it; the log:\n%s", w.From.UnixMilli(), n-1, issued[n-1], strings.Join(log, "\n"))
	}
	// The final state without the writes after the prefix is the state
	// at From.
	for i := n; i < writes; i++ {
		if err := to.Client().Del(ctx, fmt.Sprintf("w:%06d", i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := from.Digest(ctx), to.Digest(ctx); got != want {
		t.Errorf("--at window From: digest %s, want %s (the source's final state without writes %d and later)", got, want, n)
	}
}
