package drill

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/ship"
	"redback/internal/snapshot"
	"redback/internal/storage/file"
)

// mark is a point of the shipped log and the source's digest there.
type mark struct {
	at     time.Time
	digest string
}

// shippedRepo is a file repository holding a snapshot taken before the
// log starts (early), a log generation written by ship.Shipper from a real
// source with writes in two rounds (marks[0] after the first, marks[1]
// after the second), and a snapshot taken after the log (late).
type shippedRepo struct {
	dir          string
	b            *file.Backend
	early, late  *catalog.Snapshot
	marks        []mark
	finalDigest  string
	generationTo time.Time
	shortGone    time.Time // the short TTLs of the second round have ended
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

func saveSnapshot(t *testing.T, s *redistest.Server, b *file.Backend) *catalog.Snapshot {
	t.Helper()
	if err := s.Client().Do(t.Context(), "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Store(t.Context(), bytes.NewReader(data), snapshot.Options{Backend: b, Method: "rdb-file"})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func newShippedRepo(t *testing.T) *shippedRepo {
	t.Helper()
	ctx := t.Context()
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	redistest.Populate(t, src, 40)
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &shippedRepo{dir: dir, b: b}
	r.early = saveSnapshot(t, src, b)
	waitUntil(t, r.early.EndTime.Add(5*time.Millisecond))

	u, err := redisurl.Parse(src.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
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
	durable := func() time.Time {
		t.Helper()
		want := replOffset(t, src)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if st := sh.Stats(); st.Generation != "" && st.DurableOffset >= want {
				ws, err := pitr.Windows(ctx, b)
				if err != nil || len(ws) != 1 {
					t.Fatalf("windows %+v %v", ws, err)
				}
				// The next write gets a later millisecond.
				waitUntil(t, ws[0].To.Add(2*time.Millisecond))
				return ws[0].To
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(2 * time.Millisecond):
			}
		}
		t.Fatalf("shipper did not make offset %d durable: %+v", want, sh.Stats())
		return time.Time{}
	}
	durable()
	c := src.Client()
	must := func(args ...any) {
		t.Helper()
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	for round := range 2 {
		p := strconv.Itoa(round)
		must("SET", "round:"+p, p)
		must("INCR", "counter")
		must("RPUSH", "db0:list:small", "pushed"+p)
		must("HSET", "db0:hash:big", "round", p)
		must("SET", "ttl:"+p, "v", "PX", "100000000")
		must("ZINCRBY", "db0:zset:small", "2.5", "m1")
		if round == 1 {
			// Keys whose TTL ends before the drill: the AOF server keeps
			// them, the replay into a primary drops them.
			must("DEBUG", "SET-ACTIVE-EXPIRE", "0")
			must("SET", "short:1", "v", "PX", "200")
			must("HSET", "short:h", "f", "v")
			must("PEXPIRE", "short:h", "200")
			r.shortGone = time.Now().Add(250 * time.Millisecond)
			must("DEL", "round:0")
			must("SELECT", "5")
			must("SET", "db5key", "x")
			must("SELECT", "0")
		}
		at := durable()
		r.marks = append(r.marks, mark{at: at, digest: src.Digest(ctx)})
	}
	r.generationTo = r.marks[1].at
	stop()
	r.finalDigest = src.Digest(ctx)
	waitUntil(t, r.generationTo.Add(5*time.Millisecond))
	r.late = saveSnapshot(t, src, b)
	return r
}

// runAt drills at and checks that every scratch server it started is
// gone and the scratch dir is empty.
func runAt(t *testing.T, r *shippedRepo, at time.Time) *Report {
	t.Helper()
	var pids []int
	rep, _, err := run(t, t.Context(), Options{Backend: r.b, At: at, SampleKeys: 1000, RTOObjective: time.Hour,
		onServer: func(p int) { pids = append(pids, p) }})
	for _, p := range pids {
		if err := syscall.Kill(p, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("scratch redis-server pid %d still exists after Run (kill -0: %v)", p, err)
		}
	}
	if err != nil {
		t.Fatalf("drill at %s: %v", at, err)
	}
	return rep
}

func TestRun_PointInTime(t *testing.T) {
	r := newShippedRepo(t)

	t.Run("between snapshots", func(t *testing.T) {
		m := r.marks[0]
		rep := runAt(t, r, m.at)
		if !rep.OK {
			t.Fatalf("drill failed: %+v", rep.Checks)
		}
		p := rep.Point
		if p == nil || p.Kind != PointPITR || p.Generation == "" || !p.Time.Equal(m.at) || !p.Requested.Equal(m.at) {
			t.Fatalf("point %+v, want pitr at %s", p, m.at)
		}
		if rep.AOFDigest != m.digest || rep.ReplayDigest != m.digest || !rep.DigestMatch {
			t.Fatalf("digests: AOF %s, replay %s, source at the point %s", rep.AOFDigest, rep.ReplayDigest, m.digest)
		}
		if m.digest == r.finalDigest || rep.Snapshot == r.late.ID || rep.Snapshot == r.early.ID {
			t.Fatalf("the point is not between the snapshots: base %s", rep.Snapshot)
		}
		if rep.Keys == 0 || rep.Keys != rep.ExpectedKeys || rep.SampleChecked == 0 || rep.SampleMismatches != 0 || !rep.FunctionsOK || len(rep.Functions) != 1 {
			t.Fatalf("report %+v", rep)
		}
		var names []string
		for _, c := range rep.Checks {
			names = append(names, c.Name)
		}
		if got := strings.Join(names, ","); got != "restore,load,replay,keys,digest,sample,functions,rto" {
			t.Fatalf("checks %s", got)
		}
		for _, ph := range []string{PhaseRestore, PhaseLoad, PhaseReplay, PhaseChecks} {
			if _, ok := rep.Phases[ph]; !ok {
				t.Errorf("phase %s not timed: %v", ph, rep.Phases)
			}
		}
		if rep.RTOSeconds <= 0 || rep.RTOSeconds > rep.TotalSeconds {
			t.Errorf("RTO %f, total %f", rep.RTOSeconds, rep.TotalSeconds)
		}
		var md bytes.Buffer
		if err := rep.Markdown(&md); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"PASSED", "Point in time", p.Generation, m.digest, "| replay |"} {
			if !strings.Contains(md.String(), want) {
				t.Errorf("markdown lacks %q:\n%s", want, md.String())
			}
		}
		if pins, err := catalog.ListPins(t.Context(), r.b); err != nil || len(pins) != 0 {
			t.Errorf("pins left: %v %v", pins, err)
		}
	})

	t.Run("newest durable point", func(t *testing.T) {
		waitUntil(t, r.shortGone)
		rep := runAt(t, r, time.Now())
		if !rep.OK || rep.Point.Kind != PointPITR || !rep.Point.Time.Equal(r.generationTo) || rep.AOFDigest != r.finalDigest || !rep.DigestMatch {
			t.Fatalf("point %+v digest %s (want %s) checks %+v", rep.Point, rep.AOFDigest, r.finalDigest, rep.Checks)
		}
		// The replay dropped keys whose TTL ended (PEXPIREAT in the past
		// deletes on a primary): DEBUG DIGEST
		// differs, the data without them does not.
		if rep.ReplayDigest == rep.AOFDigest || rep.Keys <= rep.ExpectedKeys {
			t.Fatalf("replay digest %s, keys %d/%d", rep.ReplayDigest, rep.Keys, rep.ExpectedKeys)
		}
		for _, c := range rep.Checks {
			if c.Name == CheckDigest && !strings.Contains(c.Detail, "differ only by keys whose TTL ended") {
				t.Errorf("digest check %q", c.Detail)
			}
		}
		if rpo := time.Since(r.generationTo).Seconds(); rep.RPOSeconds <= 0 || rep.RPOSeconds > rpo {
			t.Errorf("RPO %f, want the age of the newest durable point (at most %f)", rep.RPOSeconds, rpo)
		}
		if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "newest durable point") {
			t.Errorf("notes %q", rep.Notes)
		}
	})

	t.Run("latest", func(t *testing.T) {
		rep, _, err := run(t, t.Context(), Options{Backend: r.b, Latest: true, SampleKeys: 1000})
		if err != nil || !rep.OK || rep.Point.Kind != PointPITR || !rep.Point.Time.Equal(r.generationTo) || rep.AOFDigest != r.finalDigest {
			t.Fatalf("err %v point %+v digest %s (want %s) checks %+v", err, rep.Point, rep.AOFDigest, r.finalDigest, rep.Checks)
		}
		for _, n := range rep.Notes {
			if strings.Contains(n, "comes before the newest durable point") {
				t.Errorf("the newest point is called older than itself: %q", n)
			}
		}
	})

	t.Run("before the log falls back to a snapshot", func(t *testing.T) {
		rep := runAt(t, r, r.early.EndTime)
		if !rep.OK || rep.Point.Kind != PointSnapshot || rep.Snapshot != r.early.ID || rep.Digest != r.early.Digest {
			t.Fatalf("point %+v snapshot %s checks %+v", rep.Point, rep.Snapshot, rep.Checks)
		}
		if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "no log generation covers") {
			t.Errorf("notes %q", rep.Notes)
		}
	})

	t.Run("nothing at or before", func(t *testing.T) {
		_, pid, err := run(t, t.Context(), Options{Backend: r.b, At: r.early.EndTime.Add(-time.Hour)})
		if !errors.Is(err, pitr.ErrTargetNotCovered) || !errors.Is(err, catalog.ErrNoSnapshot) || pid != 0 {
			t.Fatalf("err %v pid %d", err, pid)
		}
	})

	t.Run("canceled during the replay", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var pids []int
		rep, _, err := run(t, ctx, Options{Backend: r.b, At: r.marks[0].at, onServer: func(p int) {
			pids = append(pids, p)
			if len(pids) == 2 {
				cancel()
			}
		}})
		if !errors.Is(err, context.Canceled) || len(pids) != 2 || rep == nil || rep.OK {
			t.Fatalf("err %v pids %v rep %+v", err, pids, rep)
		}
		for _, p := range pids {
			if err := syscall.Kill(p, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("scratch redis-server pid %d still exists (kill -0: %v)", p, err)
			}
		}
	})

	// Last: it damages the repository.
	t.Run("tampered segment", func(t *testing.T) {
		gens, err := catalog.ListGenerations(t.Context(), r.b)
		if err != nil || len(gens) != 1 {
			t.Fatalf("%v %v", gens, err)
		}
		segs, err := catalog.ListSegments(t.Context(), r.b, gens[0].ID)
		if err != nil || len(segs) == 0 {
			t.Fatalf("%v %v", segs, err)
		}
		last := r.marks[len(r.marks)-1].at.UnixMilli()
		tampered := 0
		for _, s := range segs {
			if s.Commands == 0 || s.FirstMs > last {
				// Only the primary's PINGs, or wholly after every mark
				// (a slow run lives past a replication PING): no drill
				// at a mark needs to read it.
				continue
			}
			tampered++
			key := s.Object.Key
			path := filepath.Join(r.dir, filepath.FromSlash(key))
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			raw[len(raw)/2] ^= 0x04
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, m := range r.marks { // found by NewPlan's cut search or by ToDir
				if m.at.UnixMilli() < s.FirstMs {
					// A point before the segment's first command need not
					// read it (under load a segment can start between
					// two marks): only the points that replay it must fail.
					continue
				}
				rep := runAt(t, r, m.at)
				f := rep.Failed()
				if rep.OK || len(f) != 1 || f[0].Name != CheckRestore || !strings.Contains(f[0].Detail, key) {
					t.Fatalf("bit flip in %s: %+v", key, rep.Checks)
				}
			}
			raw[len(raw)/2] ^= 0x04
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if tampered == 0 {
			t.Fatalf("no segment holds the marks' commands: %+v", segs)
		}
	})

	t.Run("gap in the log", func(t *testing.T) {
		gens, err := catalog.ListGenerations(t.Context(), r.b)
		if err != nil || len(gens) != 1 {
			t.Fatalf("%v %v", gens, err)
		}
		segs, err := catalog.ListSegments(t.Context(), r.b, gens[0].ID)
		if err != nil || len(segs) < 2 {
			t.Fatalf("%v %v", segs, err)
		}
		s := segs[0]
		if err := os.Remove(filepath.Join(r.dir, filepath.FromSlash(catalog.SegmentKey(s.Generation, s.Start, s.End)))); err != nil {
			t.Fatal(err)
		}
		rep := runAt(t, r, r.marks[1].at)
		f := rep.Failed()
		if rep.OK || len(f) != 1 || f[0].Name != CheckRestore || !strings.Contains(f[0].Detail, "gap") {
			t.Fatalf("gap: %+v", rep.Checks)
		}
		// After everything: the newest point is not reachable either.
		rep = runAt(t, r, time.Now())
		f = rep.Failed()
		if rep.OK || len(f) != 1 || f[0].Name != CheckRestore || !strings.Contains(f[0].Detail, "missing the log between offsets") {
			t.Fatalf("gap, now: %+v", rep.Checks)
		}
	})
}
