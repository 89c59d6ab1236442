package pitr_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/pitr/pitrtest"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/replica"
	"redback/internal/restore"
	"redback/internal/snapshot"
	"redback/internal/storage"
	"redback/internal/storage/mem"
)

// capture is a replica connection recording the stream of a source server
// with receive times, after storing the full-sync RDB as a generation base.
type capture struct {
	t      *testing.T
	src    *redistest.Server
	conn   *replica.Conn
	gen    string
	replid string
	start  int64
	base   *catalog.Snapshot
	rdb    []byte
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	cmds []pitrtest.Cmd
	end  int64
	err  error
}

func startCapture(t *testing.T, src *redistest.Server, b storage.Backend) *capture {
	t.Helper()
	ctx := t.Context()
	u, err := redisurl.Parse(src.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := replica.Dial(ctx, u, replica.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	res, err := conn.Sync(ctx, replica.Position{})
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{t: t, src: src, conn: conn, replid: res.Position.ReplID, start: res.Position.Offset, end: res.Position.Offset}
	c.gen = catalog.NewGenerationID(time.Now(), c.replid)
	var buf bytes.Buffer
	c.base, err = snapshot.Store(ctx, io.TeeReader(res.RDB, &buf), snapshot.Options{Backend: b, Method: "ship", Generation: c.gen})
	if err != nil {
		t.Fatal(err)
	}
	c.rdb = buf.Bytes()
	cctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			cmd, err := conn.Next(cctx)
			ms := time.Now().UnixMilli()
			c.mu.Lock()
			if err != nil {
				if cctx.Err() == nil {
					c.err = err
				}
				c.mu.Unlock()
				return
			}
			c.cmds = append(c.cmds, pitrtest.Cmd{Args: cmd.Args, Offset: cmd.Offset, Ms: ms})
			c.end = cmd.End()
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *capture) stop() {
	c.cancel()
	c.conn.Close()
	c.wg.Wait()
}

// caughtUp waits until the capture holds everything the source
// propagated, then returns the receive time of the last command and the
// offset.
func (c *capture) caughtUp() (int64, int64) {
	c.t.Helper()
	want := replOffset(c.t, c.src)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 20000; i++ {
		c.mu.Lock()
		end, err := c.end, c.err
		var ms int64
		if n := len(c.cmds); n > 0 {
			ms = c.cmds[n-1].Ms
		}
		c.mu.Unlock()
		if err != nil {
			c.t.Fatalf("capture: %v", err)
		}
		if end >= want {
			// let the next command get a later millisecond
			for j := 0; j < 1000 && time.Now().UnixMilli() <= ms; j++ {
				time.Sleep(time.Millisecond)
			}
			return ms, end
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.t.Fatalf("capture did not reach offset %d", want)
	return 0, 0
}

func (c *capture) commands() []pitrtest.Cmd {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]pitrtest.Cmd(nil), c.cmds...)
}

func replOffset(t *testing.T, s *redistest.Server) int64 {
	t.Helper()
	info, err := s.Client().Info(t.Context(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no master_repl_offset")
	return 0
}

// clients gives db-bound clients of a server.
type clients struct {
	s  *redistest.Server
	db map[int]*redis.Client
}

func newClients(t *testing.T, s *redistest.Server) *clients {
	c := &clients{s: s, db: map[int]*redis.Client{}}
	t.Cleanup(func() {
		for _, x := range c.db {
			x.Close()
		}
	})
	return c
}

func (c *clients) do(t *testing.T, db int, args ...any) {
	t.Helper()
	x := c.db[db]
	if x == nil {
		x = redis.NewClient(&redis.Options{Addr: c.s.Addr(), DB: db, DisableIdentity: true})
		c.db[db] = x
	}
	if err := x.Do(t.Context(), args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("%v: %v", args, err)
	}
}

func (c *clients) tx(t *testing.T, db int, cmds ...[]any) {
	t.Helper()
	c.do(t, db, "PING") // make the client
	_, err := c.db[db].TxPipelined(t.Context(), func(p redis.Pipeliner) error {
		for _, a := range cmds {
			p.Do(t.Context(), a...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var far = time.Now().Add(240 * time.Hour).UnixMilli()

// phases of writes; each runs on every server given (the source and the
// shadow that never sees FLUSHALL).
var phases = []func(t *testing.T, c *clients){
	func(t *testing.T, c *clients) {
		c.do(t, 0, "SET", "s1", "v1")
		c.do(t, 0, "INCR", "counter")
		c.do(t, 0, "RPUSH", "l", "a", "b", "c")
		c.do(t, 0, "HSET", "h", "f1", "v1", "f2", "v2")
		c.do(t, 0, "SADD", "st", "m1", "m2", "7")
		c.do(t, 0, "ZADD", "z", "1", "a", "2.5", "b")
		c.do(t, 0, "XADD", "x", "1-1", "f", "v")
		c.do(t, 0, "SET", "ttl", "v", "PXAT", far)
		c.do(t, 1, "SET", "db1key", "x")
		c.do(t, 1, "LPUSH", "db1list", "1", "2")
		c.do(t, 0, "SET", "bin\x00key", "\xff\x00\r\n")
	},
	func(t *testing.T, c *clients) {
		c.tx(t, 0, []any{"SET", "tx1", "a"}, []any{"INCR", "counter"}, []any{"RPUSH", "l", "tx"})
		c.do(t, 0, "EVAL", "redis.call('set',KEYS[1],'x'); redis.call('incr',KEYS[2])", 2, "e1", "counter")
		c.do(t, 0, "DEL", "s1")
		c.do(t, 0, "HDEL", "h", "f1")
		c.do(t, 0, "ZINCRBY", "z", "5", "a")
		c.do(t, 0, "XADD", "x", "2-1", "g", "w")
		c.do(t, 0, "PEXPIREAT", "l", far+5)
		c.do(t, 3, "HSET", "db3h", "a", "1")
	},
	func(t *testing.T, c *clients) {
		c.do(t, 1, "SET", "db1k2", "y")
		c.do(t, 0, "SWAPDB", "1", "2")
		c.do(t, 0, "APPEND", "tx1", "bc")
		c.do(t, 0, "LPOP", "l")
		c.do(t, 0, "SREM", "st", "m1")
		c.do(t, 2, "DEL", "db1key")
		c.do(t, 0, "UNLINK", "e1")
	},
}

func TestPITR_EndToEnd(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	redistest.Populate(t, src, 60)
	b := mem.New()
	cp := startCapture(t, src, b)
	d0 := src.Digest(ctx)

	shadow := redistest.Start(t)
	su, _ := redisurl.Parse(shadow.URL(), redisurl.Options{})
	if _, err := restore.ToRedis(ctx, restore.SnapshotSource(b, cp.base, nil), su, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	if got := shadow.Digest(ctx); got != d0 {
		t.Fatalf("shadow digest %s, source %s", got, d0)
	}
	sc, hc := newClients(t, src), newClients(t, shadow)
	type mark struct {
		ms, off int64
		digest  string
	}
	var marks []mark
	for _, ph := range phases {
		ph(t, sc)
		ph(t, hc)
		ms, off := cp.caughtUp()
		marks = append(marks, mark{ms, off, src.Digest(ctx)})
	}
	// just before FLUSHALL (no quiet point), then FLUSHALL on the source only
	for _, c := range []*clients{sc, hc} {
		c.do(t, 0, "SET", "before_flush", "1")
		c.do(t, 0, "RPUSH", "l", "z")
	}
	dFlush := src.Digest(ctx)
	sc.do(t, 0, "FLUSHALL")
	for _, c := range []*clients{sc, hc} {
		c.do(t, 0, "SET", "after", "1")
		c.do(t, 1, "HSET", "h2", "a", "b")
	}
	lastMs, _ := cp.caughtUp()
	dNoFlush := shadow.Digest(ctx)
	cp.stop()
	cmds := cp.commands()

	// Segments of 5 commands: some boundaries fall inside transactions.
	var split []int
	for i := 5; i < len(cmds); i += 5 {
		split = append(split, i)
	}
	segs, err := pitrtest.Write(ctx, b, pitrtest.Generation{ID: cp.gen, ReplID: cp.replid, StartOffset: cp.start, BaseSnapshot: cp.base.ID, Cmds: cmds, SplitAt: split})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d commands in %d segments", len(cmds), len(segs))

	ws, err := pitr.Windows(ctx, b)
	if err != nil || len(ws) != 1 {
		t.Fatalf("windows %v %v", ws, err)
	}
	w := ws[0]
	if w.Problem != "" || len(w.Gaps) != 0 || w.To.UnixMilli() != lastMs {
		t.Fatalf("window %+v (last ms %d)", w, lastMs)
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
	check("base", pitr.AtTime(w.From), d0)
	for i, m := range marks {
		p := check("mark "+strconv.Itoa(i), pitr.AtTime(time.UnixMilli(m.ms)), m.digest)
		if p.Offset > m.off {
			t.Errorf("mark %d: plan offset %d past %d", i, p.Offset, m.off)
		}
		check("offset "+strconv.Itoa(i), pitr.AtOffset(m.off), m.digest)
	}
	p := check("before flushall", pitr.BeforeCommand(pitr.CommandMatch{Name: "flushall"}), dFlush)
	if p.Match == nil || p.Match.Name != "FLUSHALL" || p.Match.Offset != p.Offset {
		t.Fatalf("match %+v, offset %d", p.Match, p.Offset)
	}
	flushOff := p.Match.Offset

	skip := pitr.AtTime(time.UnixMilli(lastMs))
	skip.Skip = []int64{flushOff}
	sp := check("skip flushall", skip, dNoFlush)
	if len(sp.Skipped) != 1 || sp.Skipped[0].Name != "FLUSHALL" {
		t.Fatalf("skipped %+v", sp.Skipped)
	}

	// redback log finds the same FLUSHALL
	var found []pitr.Command
	err = pitr.Log(ctx, b, pitr.Filter{Command: "FLUSHALL"}, pitr.Options{}, func(c *pitr.Command) error {
		found = append(found, *c)
		return nil
	})
	if err != nil || len(found) != 1 || found[0].Offset != flushOff {
		t.Fatalf("log: %v %+v", err, found)
	}

	// A transaction: an offset inside it restores the state before MULTI,
	// which is mark 0 (phase 2 starts with the transaction).
	var multiOff int64 = -1
	for i, c := range cmds {
		if strings.EqualFold(string(c.Args[0]), "MULTI") && c.Offset >= marks[0].off {
			multiOff = cmds[i+2].Offset + 1 // inside the second queued command
			break
		}
	}
	if multiOff < 0 {
		t.Fatal("no MULTI in the stream")
	}
	tp := check("inside tx", pitr.AtOffset(multiOff), marks[0].digest)
	if len(tp.Notes) == 0 || !strings.Contains(tp.Notes[0], "MULTI") {
		t.Errorf("notes %q", tp.Notes)
	}
	// A key pattern: the DEL of db1key (in db 2 after SWAPDB), not the DEL of s1.
	kp, err := pitr.NewPlan(ctx, b, pitr.BeforeCommand(pitr.CommandMatch{Name: "del", KeyPattern: "db1*"}), pitr.Options{})
	if err != nil || kp.Match == nil || string(kp.Match.Args[1]) != "db1key" || kp.Match.DB != 2 || kp.Offset != kp.Match.Offset {
		t.Fatalf("before DEL db1*: %v %+v", err, kp)
	}
	// --after skips the first DEL
	after, err := pitr.NewPlan(ctx, b, pitr.BeforeCommand(pitr.CommandMatch{Name: "DEL", After: time.UnixMilli(marks[1].ms + 1)}), pitr.Options{})
	if err != nil || string(after.Match.Args[1]) != "db1key" {
		t.Fatalf("before DEL after mark 1: %v %+v", err, after)
	}

	// Outside every window.
	for _, tg := range []pitr.Target{pitr.AtTime(w.From.Add(-time.Hour)), pitr.AtTime(time.UnixMilli(lastMs).Add(time.Hour)), pitr.AtOffset(w.ToOffset + 1000)} {
		_, err := pitr.NewPlan(ctx, b, tg, pitr.Options{})
		if !errors.Is(err, pitr.ErrTargetNotCovered) || !strings.Contains(err.Error(), cp.gen) {
			t.Errorf("%s: %v", tg, err)
		}
	}
	if _, err := pitr.NewPlan(ctx, b, pitr.BeforeCommand(pitr.CommandMatch{Name: "FLUSHDB"}), pitr.Options{}); !errors.Is(err, pitr.ErrTargetNotCovered) {
		t.Errorf("FLUSHDB: %v", err)
	}

	// A gap: the same log with segment 2 missing.
	b2 := mem.New()
	base2, err := snapshot.Store(ctx, bytes.NewReader(cp.rdb), snapshot.Options{Backend: b2, Method: "ship", Generation: cp.gen})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pitrtest.Write(ctx, b2, pitrtest.Generation{ID: cp.gen, ReplID: cp.replid, StartOffset: cp.start, BaseSnapshot: base2.ID, Cmds: cmds, SplitAt: split, Omit: []int{2}}); err != nil {
		t.Fatal(err)
	}
	_, err = pitr.NewPlan(ctx, b2, pitr.AtTime(time.UnixMilli(lastMs)), pitr.Options{})
	var ge *pitr.GapError
	if !errors.As(err, &ge) || !errors.Is(err, pitr.ErrGap) {
		t.Fatalf("gap: %v", err)
	}
	t.Log(err)
}

func toRedis(t *testing.T, p *pitr.Plan) string {
	t.Helper()
	s := redistest.Start(t)
	u, _ := redisurl.Parse(s.URL(), redisurl.Options{})
	if _, err := p.ToRedis(t.Context(), u, restore.Options{}); err != nil {
		t.Fatalf("to redis: %v", err)
	}
	d := s.Digest(t.Context())
	s.Stop()
	return d
}

func toDir(t *testing.T, p *pitr.Plan) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := p.ToDir(t.Context(), dir, restore.Options{}); err != nil {
		t.Fatalf("to dir: %v", err)
	}
	s := redistest.StartInDir(t, dir, "--appendonly", "yes")
	d := s.Digest(t.Context())
	s.Stop()
	return d
}
