package pitr_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/ship"
	"redback/internal/storage/mem"
)

// replProxy forwards loopback connections to a server and can cut the
// replication links among them (the connections that sent PSYNC) while
// every other connection (the shipper's time markers) goes on.
type replProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	repl   map[net.Conn]bool
}

func startReplProxy(t *testing.T, target string) *replProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replProxy{ln: ln, target: target, repl: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *replProxy) addr() string { return p.ln.Addr().String() }

func (p *replProxy) serve(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		_, _ = io.Copy(c, up)
		c.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if bytes.Contains(bytes.ToUpper(buf[:n]), []byte("PSYNC")) {
				p.mu.Lock()
				cut := p.cut
				if !cut {
					p.repl[c] = true
				}
				p.mu.Unlock()
				if cut {
					return // the replication link stays down
				}
			}
			if _, err := up.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			p.mu.Lock()
			delete(p.repl, c)
			p.mu.Unlock()
			return
		}
	}
}

// setCut cuts the replication links (and refuses new ones) or lets them
// through again.
func (p *replProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.repl {
			c.Close()
		}
	}
}

// With time markers, commands written while the replication link is down
// (and re-sent by the primary after PSYNC +CONTINUE) are known to within a
// marker interval: --at between two of them, ~300 ms apart, restores
// exactly (digest of the source at that point), where without markers
// the whole outage is one uncertain interval. (issue 23)
func TestPITR_TicksBoundALinkOutage(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	px := startReplProxy(t, src.Addr())
	u, err := redisurl.Parse("redis://"+px.addr(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := mem.New()
	sh := &ship.Shipper{Source: u, Backend: b, Interval: 200 * time.Millisecond, Tick: 50 * time.Millisecond,
		Log: slog.New(slog.DiscardHandler)}
	if testing.Verbose() {
		sh.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
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
	durable := func() {
		t.Helper()
		want := replOffset(t, src)
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; i < 6000 && time.Now().Before(deadline); i++ {
			if st := sh.Stats(); st.Generation != "" && st.DurableOffset >= want {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("shipper did not make offset %d durable: %+v", want, sh.Stats())
	}
	// Watch the markers as the source publishes them.
	sub := src.Client().Subscribe(ctx, catalog.TickChannel)
	defer sub.Close()
	ticks := sub.Channel()
	// markerAfter waits until a marker published after ms went through
	// the source: it is in the stream after everything written before.
	// It returns the marker's time.
	markerAfter := func(ms int64) int64 {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case m := <-ticks:
				if tk, _ := catalog.TickOf([][]byte{[]byte("PUBLISH"), []byte(m.Channel), []byte(m.Payload)}); tk.Ms > ms {
					return tk.Ms
				}
			case <-deadline:
				t.Fatalf("no time marker after %d", ms)
			}
		}
	}
	c := src.Client()
	set := func(v string) {
		t.Helper()
		if err := c.Set(ctx, "k", v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.Incr(ctx, "n").Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Streaming (not still storing the full sync) before the outage.
	for i := 0; i < 3000 && !(sh.Stats().Connected && sh.Stats().Generation != ""); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	set("before")
	durable()

	px.setCut(true)
	for i := 0; i < 1000 && sh.Stats().Connected; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if sh.Stats().Connected {
		t.Fatal("the replication link did not go down")
	}
	type point struct {
		at     time.Time
		digest string
	}
	var points []point
	for i := 0; i < 4; i++ {
		set("outage-" + strconv.Itoa(i))
		// The marker after the writes ran later than its time; the one
		// after it, sent once its reply came back, bounds the writes.
		markerAfter(markerAfter(time.Now().UnixMilli()))
		p := point{at: time.Now(), digest: src.Digest(ctx)}
		points = append(points, p)
		markerAfter(p.at.UnixMilli() + 1)
		time.Sleep(100 * time.Millisecond) // the writes ~300 ms apart
	}
	px.setCut(false)
	set("after")
	durable()

	for i, p := range points {
		plan, err := pitr.NewPlan(ctx, b, pitr.AtTime(p.at), pitr.Options{})
		if errors.Is(err, pitr.ErrUncertain) {
			t.Fatalf("point %d: refused although markers bound the outage: %v", i, err)
		}
		if err != nil {
			t.Fatalf("point %d: %v", i, err)
		}
		if got := toDir(t, plan); got != p.digest {
			t.Errorf("point %d (--at %s): restored digest %s, want %s", i, p.at.Format(time.RFC3339Nano), got, p.digest)
		}
	}
	// The outage is still visible as (narrow) uncertain intervals, none
	// holding a point.
	ws, err := pitr.Windows(ctx, b)
	if err != nil || len(ws) != 1 || len(ws[0].Uncertain) == 0 {
		t.Fatalf("windows %+v %v", ws, err)
	}
	for _, iv := range ws[0].Uncertain {
		for i, p := range points {
			if p.at.After(iv.From) && p.at.Before(iv.To) {
				t.Errorf("point %d inside %s", i, iv)
			}
		}
	}
}
