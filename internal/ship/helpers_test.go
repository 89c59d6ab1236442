package ship

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"redback/internal/aof"
	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/pitr"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/resp"
	"redback/internal/storage"
	"redback/internal/storage/file"
	"redback/internal/storage/mem"
)

func TestMain(m *testing.M) {
	if src := os.Getenv("REDBACK_SHIP_CHILD_SOURCE"); src != "" {
		os.Exit(shipChild(src, os.Getenv("REDBACK_SHIP_CHILD_REPO")))
	}
	goleak.VerifyTestMain(m)
}

// shipChild runs a Shipper in a child process (the test binary re-executed)
// until it is killed or interrupted.
func shipChild(source, repo string) int {
	u, err := redisurl.Parse(source, redisurl.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	b, err := file.New(repo)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	s := &Shipper{Source: u, Backend: b, Interval: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// testLog logs to the test output when -v.
func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func startSource(t *testing.T, extra ...string) *redistest.Server {
	t.Helper()
	return redistest.Start(t, append([]string{"--repl-backlog-size", "64mb"}, extra...)...)
}

func newShipper(t *testing.T, src *redistest.Server, b storage.Backend) *Shipper {
	t.Helper()
	u, err := redisurl.Parse(src.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &Shipper{Source: u, Backend: b, Interval: 100 * time.Millisecond, Log: testLog(t), FlushTimeout: 30 * time.Second}
}

// running is a Shipper running in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func run(t *testing.T, s *Shipper) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return")
	}
}

// waitFor polls cond every 20 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func replOffset(t *testing.T, src *redistest.Server) int64 {
	t.Helper()
	txt, err := src.Client().Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(txt, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "master_repl_offset:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no master_repl_offset")
	return 0
}

// caughtUp waits until the shipper processed everything the source wrote.
func caughtUp(t *testing.T, src *redistest.Server, s *Shipper) {
	t.Helper()
	want := replOffset(t, src)
	// Stored, not only received: a stop right after a full sync could
	// otherwise end before the generation's base is in the repository.
	waitFor(t, 90*time.Second, fmt.Sprintf("durable offset %d", want), func() bool {
		st := s.Stats()
		return st.PrimaryOffset >= want && st.DurableOffset >= want && st.Generation != ""
	})
}

// load writes every type, transactions, scripts, other dbs, EXPIRE, DEL
// and FLUSHDB, n rounds.
func load(t *testing.T, src *redistest.Server, seed uint64, n int) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 7))
	clients := make([]*redis.Client, 3)
	for i, db := range []int{0, 1, 2} {
		clients[i] = redis.NewClient(&redis.Options{Addr: src.Addr(), DB: db, DisableIdentity: true})
		defer clients[i].Close()
	}
	for i := 0; i < n; i++ {
		c := clients[rng.IntN(3)]
		k := fmt.Sprintf("k%d", rng.IntN(200))
		var err error
		switch rng.IntN(14) {
		case 0:
			err = c.Set(ctx, k, strings.Repeat("v", rng.IntN(300)), 0).Err()
		case 1:
			err = c.Do(ctx, "INCRBY", "ctr:"+k, rng.IntN(100)).Err()
		case 2:
			err = c.HSet(ctx, "h:"+k, fmt.Sprint("f", rng.IntN(20)), i).Err()
		case 3:
			err = c.LPush(ctx, "l:"+k, i, "x").Err()
		case 4:
			err = c.SAdd(ctx, "s:"+k, rng.IntN(50)).Err()
		case 5:
			err = c.ZAdd(ctx, "z:"+k, redis.Z{Score: rng.Float64(), Member: fmt.Sprint(i)}).Err()
		case 6:
			err = c.XAdd(ctx, &redis.XAddArgs{Stream: "x:" + k, Values: []any{"a", i}}).Err()
		case 7:
			err = c.Expire(ctx, k, time.Hour).Err()
		case 8:
			err = c.Del(ctx, k, "h:"+k).Err()
		case 9:
			_, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "tx:"+k, i, 0)
				p.Incr(ctx, "txc")
				p.HSet(ctx, "txh", k, i)
				return nil
			})
		case 10:
			err = c.Eval(ctx, "redis.call('SET', KEYS[1], ARGV[1]); redis.call('INCR', KEYS[1]..':n'); return 1", []string{"ev:" + k}, i).Err()
		case 11:
			if rng.IntN(20) == 0 {
				err = clients[2].FlushDB(ctx).Err()
			} else {
				err = c.Set(ctx, "px:"+k, i, 2*time.Hour).Err()
			}
		case 12:
			err = c.Do(ctx, "SETRANGE", "bin:"+k, rng.IntN(10), "\x00\r\n\xff").Err()
		case 13:
			err = c.Do(ctx, "SET", "big:"+k, strings.Repeat("B", 20000+rng.IntN(5000))).Err()
		}
		if err != nil {
			t.Errorf("load: %v", err)
			return
		}
	}
}

// checkRepo checks every generation of the repository: contiguous
// segments, consistent indexes, and, for the newest generation, that base +
// segments replay to wantDigest. It returns the generations.
func checkRepo(t *testing.T, b storage.Backend, wantDigest string) []*catalog.Generation {
	t.Helper()
	ctx := context.Background()
	gens, err := catalog.ListGenerations(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) == 0 {
		t.Fatal("no generation")
	}
	for _, g := range gens {
		segs, err := catalog.ListSegments(ctx, b, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if gaps := catalog.Contiguity(g, segs); len(gaps) > 0 {
			t.Errorf("generation %s has gaps: %+v", g.ID, gaps)
		}
		if g.Ended && len(segs) > 0 && segs[len(segs)-1].End != g.EndOffset {
			t.Errorf("generation %s ended at %d but its last segment ends at %d", g.ID, g.EndOffset, segs[len(segs)-1].End)
		}
		for _, s := range segs {
			checkSegment(t, b, s)
		}
	}
	if wantDigest != "" {
		if got := replay(t, b, gens[len(gens)-1]); got != wantDigest {
			t.Errorf("replayed digest %s, source %s", got, wantDigest)
		}
	}
	return gens
}

func readObject(t *testing.T, b storage.Backend, o catalog.Object) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), o.Key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	pr, err := pack.NewReader(rc, pack.Expect{Key: o.Key, Size: o.StoredBytes, SHA256: o.SHA256}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	data, err := io.ReadAll(pr)
	if err != nil {
		t.Fatalf("read %s: %v", o.Key, err)
	}
	if int64(len(data)) != o.RawBytes {
		t.Fatalf("%s: %d raw bytes, manifest says %d", o.Key, len(data), o.RawBytes)
	}
	return data
}

// segmentCommands parses a segment and checks its index; it returns the
// commands in order.
func checkSegment(t *testing.T, b storage.Backend, s *catalog.Segment) [][][]byte {
	t.Helper()
	data := readObject(t, b, s.Object)
	r := aof.NewReader(bytes.NewReader(data), aof.ReaderOptions{File: s.Object.Key})
	var cmds [][][]byte
	idx := s.Index
	if len(idx) == 0 || idx[0].Offset() < s.Start {
		t.Fatalf("%s: index %v starts before %d", s.Object.Key, idx, s.Start)
	}
	if err := pitr.CheckSegment(context.Background(), b, nil, s); err != nil {
		t.Fatalf("pitr.CheckSegment: %v", err)
	}
	for i := 1; i < len(idx); i++ {
		if idx[i].AOFPos() < idx[i-1].AOFPos() || idx[i].Offset() < idx[i-1].Offset() || idx[i].UnixMs() < idx[i-1].UnixMs() {
			t.Fatalf("%s: index not monotonic at %d: %v", s.Object.Key, i, idx)
		}
	}
	offsetAt := func(pos int64) (int64, bool) {
		var cp catalog.Checkpoint
		found := false
		for _, c := range idx {
			if c.AOFPos() <= pos {
				cp, found = c, true
			}
		}
		return cp.Offset() + pos - cp.AOFPos(), found
	}
	starts := map[int64]bool{int64(len(data)): true}
	first := true
	var lastEnd int64 = -1
	commands := int64(0)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", s.Object.Key, err)
		}
		if rec.Kind != aof.RecordCommand {
			continue
		}
		args := make([][]byte, len(rec.Args))
		for i, a := range rec.Args {
			args[i] = bytes.Clone(a)
		}
		if first {
			first = false
			if string(args[0]) != "SELECT" || string(args[1]) != strconv.Itoa(s.DBAtStart) {
				t.Fatalf("%s: starts with %q, want SELECT %d", s.Object.Key, args, s.DBAtStart)
			}
			continue
		}
		starts[rec.Offset] = true
		if !strings.EqualFold(string(args[0]), "SELECT") {
			commands++
		}
		off, ok := offsetAt(rec.Offset)
		if !ok || off < s.Start || off+rec.Size > s.End {
			t.Fatalf("%s: command at %d has offset %d (ok %v), outside [%d,%d)", s.Object.Key, rec.Offset, off, ok, s.Start, s.End)
		}
		if lastEnd >= 0 && off < lastEnd {
			t.Fatalf("%s: command at %d has offset %d before the previous end %d", s.Object.Key, rec.Offset, off, lastEnd)
		}
		lastEnd = off + rec.Size
		cmds = append(cmds, args)
	}
	for _, c := range idx {
		if !starts[c.AOFPos()] {
			t.Fatalf("%s: checkpoint %v is not at a command start", s.Object.Key, c)
		}
	}
	if end, _ := offsetAt(int64(len(data))); end != s.End {
		t.Fatalf("%s: index gives end offset %d, manifest %d", s.Object.Key, end, s.End)
	}
	if commands != s.Commands {
		t.Fatalf("%s: %d commands, manifest says %d", s.Object.Key, commands, s.Commands)
	}
	return cmds
}

// replay loads generation g's base snapshot into a fresh server, sends its
// segments, and returns the server's DEBUG DIGEST.
func replay(t *testing.T, b storage.Backend, g *catalog.Generation) string {
	t.Helper()
	ctx := context.Background()
	snap, err := catalog.ReadSnapshot(ctx, b, g.BaseSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Generation != g.ID {
		t.Fatalf("base snapshot %s names generation %q, want %q", snap.ID, snap.Generation, g.ID)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dump.rdb"), readObject(t, b, snap.Object), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := redistest.StartInDir(t, dir)
	defer srv.Stop()
	segs, err := catalog.ListSegments(ctx, b, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rr := resp.NewReader(nc, resp.Options{})
	var mu sync.Mutex
	for _, s := range segs {
		cmds := checkSegment(t, b, s)
		var buf []byte
		for _, c := range cmds {
			buf = resp.AppendCommand(buf, c...)
		}
		mu.Lock()
		errc := make(chan error, 1)
		go func() {
			_, err := nc.Write(buf)
			errc <- err
		}()
		for i := range cmds {
			v, err := rr.ReadValue()
			var re resp.Error
			if errors.As(err, &re) {
				t.Errorf("replay of %s: command %d %q: %v", s.Object.Key, i, cmds[i][0], err)
				continue
			}
			if err != nil {
				t.Fatalf("replay: %v (%v)", err, v)
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		mu.Unlock()
	}
	return srv.Digest(ctx)
}

// flakyBackend fails Puts while failing is set, and can hold segment data
// Puts until released.
type flakyBackend struct {
	storage.Backend
	mu      sync.Mutex
	failing bool
	gate    chan struct{} // non-nil: segment data Puts wait for it
	puts    int
}

func (f *flakyBackend) Put(ctx context.Context, key string, r io.Reader) (storage.ObjectInfo, error) {
	f.mu.Lock()
	failing, gate := f.failing, f.gate
	f.puts++
	f.mu.Unlock()
	if failing {
		return storage.ObjectInfo{}, storage.Transient(errors.New("injected storage outage"))
	}
	if gate != nil && strings.HasPrefix(key, catalog.SegmentDataPref) {
		select {
		case <-gate:
		case <-ctx.Done():
			return storage.ObjectInfo{}, ctx.Err()
		}
	}
	return f.Backend.Put(ctx, key, r)
}

func (f *flakyBackend) setFailing(v bool) {
	f.mu.Lock()
	f.failing = v
	f.mu.Unlock()
}

var _ = mem.New
