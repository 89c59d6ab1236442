package synth_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/catalog"
	"redback/internal/drill"
	"redback/internal/pitr"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/restore"
	"redback/internal/ship"
	"redback/internal/storage"
	"redback/internal/storage/mem"
	"redback/internal/synth"
	"redback/internal/verify"
)

// info reads an integer field of INFO section sec of s.
func info(t *testing.T, s *redistest.Server, sec, field string) int64 {
	t.Helper()
	txt, err := s.Client().Info(context.Background(), sec).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(txt, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("INFO %s: %v", field, err)
			}
			return n
		}
	}
	t.Fatalf("INFO %s has no %s", sec, field)
	return 0
}

// shipper runs a real shipper of src into b until the test ends.
func shipper(t *testing.T, src *redistest.Server, b storage.Backend) *ship.Shipper {
	u, err := redisurl.Parse(src.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sh := &ship.Shipper{Source: u, Backend: b, Interval: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("shipper did not stop")
		}
	})
	return sh
}

// waitDurable waits until sh stored everything src wrote.
func waitDurable(t *testing.T, src *redistest.Server, sh *ship.Shipper) {
	t.Helper()
	want := info(t, src, "replication", "master_repl_offset")
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < 60000 && time.Now().Before(deadline); i++ {
		if st := sh.Stats(); st.Generation != "" && st.DurableOffset >= want {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("shipper did not make offset %d durable: %+v", want, sh.Stats())
}

// restoredDigest restores snap into a fresh server and returns its digest.
func restoredDigest(t *testing.T, b storage.Backend, snap *catalog.Snapshot) string {
	t.Helper()
	ctx := t.Context()
	dst := redistest.Start(t)
	u, err := redisurl.Parse(dst.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restore.ToRedis(ctx, restore.SnapshotSource(b, snap, nil), u, restore.Options{}); err != nil {
		t.Fatalf("restore %s: %v", snap.ID, err)
	}
	return dst.Digest(ctx)
}

// writer runs mixed writes on src until stopped (bounded by count).
func writer(t *testing.T, src *redistest.Server) (stop func() int) {
	c := src.Client()
	var wg sync.WaitGroup
	quit := make(chan struct{})
	n := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx := context.Background()
		for ; n < 200000; n++ {
			select {
			case <-quit:
				return
			default:
			}
			k := strconv.Itoa(n % 500)
			p := c.Pipeline()
			p.Set(ctx, "s:"+k, n, 0)
			p.HSet(ctx, "h:"+strconv.Itoa(n%7), k, n)
			p.ZAdd(ctx, "z", redis.Z{Score: float64(n) / 3, Member: k})
			p.RPush(ctx, "l:"+strconv.Itoa(n%5), n)
			p.LTrim(ctx, "l:"+strconv.Itoa(n%5), -50, -1)
			p.Expire(ctx, "s:"+k, time.Hour)
			p.Incr(ctx, "counter")
			if n%100 == 0 {
				p.Del(ctx, "s:"+strconv.Itoa((n+250)%500))
			}
			if _, err := p.Exec(ctx); err != nil {
				t.Errorf("write %d: %v", n, err)
				return
			}
		}
	}()
	var once sync.Once
	stop = func() int {
		once.Do(func() { close(quit) })
		wg.Wait()
		return n
	}
	t.Cleanup(func() { stop() })
	return stop
}

// TestBuild_FromShippedLog ships a real source under writes, synthesizes
// snapshots several times (each from the one before), and proves that the
// source never forks again after the shipper's full sync, that the newest
// one restores to the source's digest once writes stopped, that a drill of
// it passes, and that point-in-time plans start from them.
func TestBuild_FromShippedLog(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	redistest.Populate(t, src, 200)
	b := mem.New()
	sh := shipper(t, src, b)
	waitDurable(t, src, sh)
	forks := info(t, src, "stats", "total_forks")
	if forks < 1 {
		t.Fatalf("total_forks %d after the shipper's full sync", forks)
	}
	tmp := t.TempDir()
	build := func() *synth.Result {
		t.Helper()
		res, err := synth.Build(ctx, synth.Options{Backend: b, TempDir: tmp})
		if err != nil {
			t.Fatalf("synthesize: %v", err)
		}
		s := res.Snapshot
		if s.Method != catalog.MethodLog || !s.FromLog() || !s.Verified || s.Generation == "" || s.Source.Offset < 0 {
			t.Fatalf("manifest %+v", s)
		}
		if got := info(t, src, "stats", "total_forks"); got != forks {
			t.Fatalf("total_forks %d after a synthesized snapshot, %d after the first sync", got, forks)
		}
		return res
	}

	stop := writer(t, src)
	var results []*synth.Result
	for i := 0; i < 3; i++ {
		// Let some log become durable (bounded) before each synthesis.
		want := sh.Stats().DurableOffset + 20000
		for j := 0; j < 6000 && sh.Stats().DurableOffset < want; j++ {
			time.Sleep(5 * time.Millisecond)
		}
		res := build()
		if i > 0 {
			prev := results[i-1].Snapshot
			if res.Base != prev.ID {
				t.Errorf("synthesis %d replayed from %s, want the previous synthesized snapshot %s", i, res.Base, prev.ID)
			}
			if res.Snapshot.Source.Offset < prev.Source.Offset {
				t.Errorf("synthesis %d at offset %d, before the previous one's %d", i, res.Snapshot.Source.Offset, prev.Source.Offset)
			}
		}
		results = append(results, res)
	}
	if n := stop(); n == 0 {
		t.Fatal("no writes")
	}
	waitDurable(t, src, sh)
	want := src.Digest(ctx)
	last := build()
	if got := restoredDigest(t, b, last.Snapshot); got != want {
		t.Fatalf("synthesized snapshot %s restores to digest %s, the source has %s", last.Snapshot.ID, got, want)
	}
	if last.ScratchDigest == "" || last.ScratchRSSBytes <= 0 || last.Server.Path == "" {
		t.Errorf("result %+v", last)
	}

	rep, err := drill.Run(ctx, drill.Options{Backend: b, Snapshot: last.Snapshot, ScratchDir: tmp})
	if err != nil || !rep.OK {
		t.Fatalf("drill of %s: %v %+v", last.Snapshot.ID, err, rep.Failed())
	}

	// Later points start from the newest synthesized snapshot before them.
	if _, err := src.Client().Set(ctx, "after", "1", 0).Result(); err != nil {
		t.Fatal(err)
	}
	waitDurable(t, src, sh)
	want = src.Digest(ctx)
	p, err := pitr.NewPlan(ctx, b, pitr.Latest(), pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Base.ID != last.Snapshot.ID {
		t.Errorf("latest point: base %s, want the newest synthesized snapshot %s", p.Base.ID, last.Snapshot.ID)
	}
	path := filepath.Join(tmp, "latest.rdb")
	if _, err := p.ToRDB(ctx, path, "", restore.Options{}); err != nil {
		t.Fatal(err)
	}
	got := redistest.StartInDir(t, tmp, "--dbfilename", "latest.rdb").Digest(ctx)
	if got != want {
		t.Errorf("latest point from synthesized base: digest %s, source %s", got, want)
	}
	first := results[0].Snapshot
	p, err = pitr.NewPlan(ctx, b, pitr.AtOffset(first.Source.Offset), pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Base.ID != first.ID {
		t.Errorf("offset %d: base %s, want %s", first.Source.Offset, p.Base.ID, first.ID)
	}
	p, err = pitr.NewPlan(ctx, b, pitr.AtOffset(first.Source.Offset-1), pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Base.FromLog() && p.Base.Source.Offset > p.Offset {
		t.Errorf("offset %d: base %s holds offset %d, after the point", first.Source.Offset-1, p.Base.ID, p.Base.Source.Offset)
	}

	// Retention drops the log before the newest synthesized snapshot that
	// ended before the PITR window (here: the window starts when the
	// second one ended), and nothing the window needs: its start, a point
	// inside it and the newest point restore as before; `check` finds no
	// gap; synthesis goes on from the trimmed log.
	anchor := results[1].Snapshot
	mid := pitr.AtOffset((anchor.Source.Offset + results[2].Snapshot.Source.Offset) / 2)
	points := []pitr.Target{pitr.AtTime(anchor.EndTime), mid, pitr.Latest()}
	before := make([]string, len(points))
	for i, tg := range points {
		before[i] = pointDigest(t, b, tg, tmp, "before"+strconv.Itoa(i))
	}
	now := time.Now()
	res, err := catalog.Prune(ctx, b, catalog.Policy{PITR: now.Sub(anchor.EndTime)}, now, catalog.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.TrimmedLogs[anchor.Generation] != anchor.Source.Offset || res.TrimmedSegments == 0 {
		t.Fatalf("trimmed %v (%d segments), want the log of %s before offset %d", res.TrimmedLogs, res.TrimmedSegments, anchor.Generation, anchor.Source.Offset)
	}
	for i, tg := range points {
		if got := pointDigest(t, b, tg, tmp, "after"+strconv.Itoa(i)); got != before[i] {
			t.Errorf("%s after the trim: digest %s, before it %s", tg, got, before[i])
		}
	}
	if before[2] != want {
		t.Errorf("latest point: digest %s, source %s", before[2], want)
	}
	ws, err := pitr.Windows(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	w := ws[len(ws)-1]
	if !w.LogTrimmed || w.FromOffset > anchor.Source.Offset || len(w.Gaps) != 0 || w.Problem != "" {
		t.Errorf("window after the trim: %+v", w)
	}
	if _, err := pitr.NewPlan(ctx, b, pitr.AtOffset(results[0].Snapshot.Source.Offset-1), pitr.Options{}); err == nil {
		t.Errorf("a point before the window is still restorable from a trimmed log")
	}
	var findings []string
	err = verify.Segments{}.Check(ctx, b, &verify.Options{}, func(it verify.Item) {
		if !it.OK() {
			findings = append(findings, fmt.Sprintf("%s %s: %+v", it.Kind, it.ID, it.Findings))
		}
	})
	if err != nil || len(findings) > 0 {
		t.Errorf("check of the trimmed log: %v %v", err, findings)
	}
	again := build()
	if got := restoredDigest(t, b, again.Snapshot); got != want {
		t.Errorf("synthesized after the trim: digest %s, source %s", got, want)
	}
	if got := info(t, src, "stats", "total_forks"); got != forks {
		t.Errorf("total_forks %d at the end, %d after the first sync", got, forks)
	}
}

// pointDigest restores the point tg of b into an RDB and returns the
// digest of a server that loads it.
func pointDigest(t *testing.T, b storage.Backend, tg pitr.Target, dir, name string) string {
	t.Helper()
	ctx := t.Context()
	p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{})
	if err != nil {
		t.Fatalf("%s: %v", tg, err)
	}
	if _, err := p.ToRDB(ctx, filepath.Join(dir, name+".rdb"), "", restore.Options{}); err != nil {
		t.Fatalf("%s: %v", tg, err)
	}
	return redistest.StartInDir(t, dir, "--dbfilename", name+".rdb").Digest(ctx)
}

// TestBuild_NoLog: without a log, Build says why.
func TestBuild_NoLog(t *testing.T) {
	_, err := synth.Build(t.Context(), synth.Options{Backend: mem.New()})
	var nl *synth.NoLogError
	if !errors.As(err, &nl) || nl.Reason != synth.ReasonNoLog || !errors.Is(err, synth.ErrNoLog) {
		t.Fatalf("empty repository: %v", err)
	}
}
