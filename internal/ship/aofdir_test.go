package ship

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/restore"
	"redback/internal/storage"
	"redback/internal/storage/mem"
	"redback/internal/verify"
)

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startAOFSource(t *testing.T, timestamps bool) (*redistest.Server, string) {
	t.Helper()
	ts := "no"
	if timestamps {
		ts = "yes"
	}
	src := redistest.Start(t, "--appendonly", "yes", "--aof-timestamp-enabled", ts)
	return src, filepath.Join(src.Dir, "appendonlydir")
}

func newAOFShipper(t *testing.T, dir string, b storage.Backend, log *slog.Logger) *Shipper {
	if log == nil {
		log = testLog(t)
	}
	return &Shipper{AOFDir: dir, Backend: b, Interval: 50 * time.Millisecond, Log: log, FlushTimeout: 30 * time.Second}
}

// aofEnd is the base file of the AOF directory and the total size of its
// incr files (the offset at the end of the current generation).
func aofEnd(t *testing.T, dir string) (string, int64) {
	t.Helper()
	m, _, _, err := readManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range m.Incr {
		st, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return m.Base.Name, n
}

// aofDurable waits until everything in the AOF directory is stored and
// returns the generation and its end offset.
func aofDurable(t *testing.T, src *redistest.Server, dir string, s *Shipper) (string, int64) {
	t.Helper()
	var end int64
	var gen string
	waitFor(t, 30*time.Second, "the AOF to be durable", func() bool {
		// With appendfsync everysec a slow fsync postpones writes (up to
		// 2 s): wait until Redis's AOF buffer is in the file.
		if aofBuffered(t, src) {
			return false
		}
		_, end = aofEnd(t, dir)
		st := s.Stats()
		gen = st.Generation
		return st.LastError == "" && st.DurableOffset == end && gen != ""
	})
	return gen, end
}

// aofBuffered reports whether Redis holds AOF data not yet written.
func aofBuffered(t *testing.T, src *redistest.Server) bool {
	t.Helper()
	txt, err := src.Client().Info(context.Background(), "persistence").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(txt, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "aof_buffer_length:"); ok {
			return v != "0"
		}
	}
	t.Fatal("no aof_buffer_length in INFO persistence")
	return false
}

// pitrDigest restores gen at offset off into a fresh server with pitr and
// returns its digest.
func pitrDigest(t *testing.T, b storage.Backend, gen string, off int64) string {
	t.Helper()
	tg := pitr.AtOffset(off)
	tg.Generation = gen
	return pitrPlanDigest(t, b, tg)
}

// pitrPlanDigest restores target tg into a fresh server with pitr and
// returns its digest.
func pitrPlanDigest(t *testing.T, b storage.Backend, tg pitr.Target) string {
	t.Helper()
	ctx := context.Background()
	p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{})
	if err != nil {
		t.Fatalf("plan %s: %v", tg, err)
	}
	// (At an offset followed by a #TS line the plan reports the offset
	// after it: the same state.)
	if tg.Kind == pitr.KindOffset && (p.Offset < tg.Offset || p.Offset > tg.Offset+64) {
		t.Fatalf("plan %s stops at offset %d", tg, p.Offset)
	}
	dst := redistest.Start(t)
	u, err := redisurl.Parse(dst.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.ToRedis(ctx, u, restore.Options{})
	if err != nil {
		t.Fatalf("restore %s: %v", tg, err)
	}
	if res.Errors > 0 {
		t.Fatalf("restore %s: %d replay errors: %v", tg, res.Errors, res.FirstErrors)
	}
	return dst.Digest(ctx)
}

func waitRewrite(t *testing.T, src *redistest.Server, dir, oldBase string) {
	t.Helper()
	if err := src.Client().Do(context.Background(), "BGREWRITEAOF").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the AOF rewrite", func() bool {
		base, _ := aofEnd(t, dir)
		return base != oldBase
	})
}

// TestShipper_AOFDir ships an AOF directory through a rewrite and restores
// both generations with pitr.
func TestShipper_AOFDir(t *testing.T) {
	src, dir := startAOFSource(t, true)
	b := mem.New()
	s := newAOFShipper(t, dir, b, nil)
	r := run(t, s)
	defer r.cancel()

	load(t, src, 1, 300)
	d1 := src.Digest(context.Background())
	gen1, off1 := aofDurable(t, src, dir, s)

	load(t, src, 2, 200)
	base1, _ := aofEnd(t, dir)
	done := make(chan struct{})
	go func() { defer close(done); load(t, src, 3, 300) }() // writes during the rewrite
	waitRewrite(t, src, dir, base1)
	<-done
	// Redis writes #TS only when its clock's second advanced past the
	// last one it wrote: start the last writes in a later second, so the
	// new generation's log carries one whatever the load (its times are
	// checked below).
	sec := time.Now().Unix()
	waitFor(t, 3*time.Second, "the next second", func() bool { return time.Now().Unix() > sec })
	load(t, src, 4, 200)
	d2 := src.Digest(context.Background())
	var gen2 string
	var off2 int64
	waitFor(t, 30*time.Second, "a new generation", func() bool {
		gen2, off2 = aofDurable(t, src, dir, s)
		return gen2 != gen1
	})
	waitFor(t, 30*time.Second, "the old base to be unpinned", func() bool {
		_, err := os.Stat(filepath.Join(DefaultPinDir(dir), base1))
		return os.IsNotExist(err)
	})
	r.stop(t)

	gens := checkRepo(t, b, "")
	if len(gens) != 2 {
		t.Fatalf("%d generations, want 2", len(gens))
	}
	g1, g2 := gens[0], gens[1]
	if g1.ID != gen1 || g2.ID != gen2 {
		t.Fatalf("generations %s %s, want %s %s", g1.ID, g2.ID, gen1, gen2)
	}
	if !g1.Ended || g1.EndReason != "aof rewrite" || g2.Ended {
		t.Errorf("generation ends: %+v / %+v", g1, g2)
	}
	for _, g := range gens {
		if g.Mode != "aof" || g.TimeSource != TimeSourceAOF || g.StartOffset != 0 {
			t.Errorf("generation %s: mode %q time source %q start %d: %+v", g.ID, g.Mode, g.TimeSource, g.StartOffset, g)
		}
	}
	if got := pitrDigest(t, b, gen2, off2); got != d2 {
		t.Errorf("newest point: digest %s, source %s", got, d2)
	}
	sum, err := verify.Run(context.Background(), b, verify.Options{Checkers: []verify.Checker{verify.Segments{}}})
	if err != nil || !sum.OK() || sum.Checked < 4 {
		t.Errorf("verify: %+v %v", sum, err)
	}
	// By time: the newest point of the window.
	ws, err := pitr.Windows(context.Background(), b)
	if err != nil || len(ws) != 2 {
		t.Fatalf("windows %+v %v", ws, err)
	}
	if got := pitrPlanDigest(t, b, pitr.AtTime(ws[1].To)); got != d2 {
		t.Errorf("at %s: digest %s, source %s", ws[1].To, got, d2)
	}
	if got := pitrDigest(t, b, gen1, off1); got != d1 {
		t.Errorf("point before the rewrite: digest %s, source had %s", got, d1)
	}
	// Times come from #TS: within the seconds of the test.
	segs, err := catalog.ListSegments(context.Background(), b, gen2)
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %v %v", segs, err)
	}
	if last := segs[len(segs)-1].LastMs; last%1000 != 0 || time.Since(time.UnixMilli(last)) > time.Minute {
		t.Errorf("last segment time %d is not a #TS time", last)
	}
	if ents, err := os.ReadDir(DefaultPinDir(dir)); err != nil || len(ents) != 0 {
		t.Errorf("pin directory after the run: %v %v", ents, err)
	}
}

// TestShipper_AOFDirNoTimestamps ships an AOF without #TS annotations: it
// warns, records time_source "upload", and restores by offset.
func TestShipper_AOFDirNoTimestamps(t *testing.T) {
	src, dir := startAOFSource(t, false)
	b := mem.New()
	var logs lockedBuffer
	s := newAOFShipper(t, dir, b, slog.New(slog.NewTextHandler(&logs, nil)))
	r := run(t, s)
	defer r.cancel()
	load(t, src, 5, 200)
	gen, _ := aofDurable(t, src, dir, s)
	waitFor(t, 30*time.Second, "the time source", func() bool {
		g, err := catalog.ReadGeneration(context.Background(), b, gen)
		return err == nil && g.TimeSource != ""
	})
	load(t, src, 6, 100)
	d := src.Digest(context.Background())
	gen, off := aofDurable(t, src, dir, s)
	r.stop(t)
	gens := checkRepo(t, b, "")
	if len(gens) != 1 || gens[0].TimeSource != TimeSourceUpload {
		t.Fatalf("generations %+v", gens)
	}
	if n := strings.Count(logs.String(), "no #TS annotations"); n != 1 {
		t.Errorf("%d warnings about aof-timestamp-enabled, want 1:\n%s", n, logs.String())
	}
	if got := pitrDigest(t, b, gen, off); got != d {
		t.Errorf("digest %s, source %s", got, d)
	}
}

// TestShipper_AOFDirRestart stops the shipper mid-stream and starts a new
// one: it resumes the generation from the repository without a gap.
func TestShipper_AOFDirRestart(t *testing.T) {
	src, dir := startAOFSource(t, true)
	b := mem.New()
	s := newAOFShipper(t, dir, b, nil)
	r := run(t, s)
	load(t, src, 7, 200)
	gen1, _ := aofDurable(t, src, dir, s)
	r.stop(t)

	load(t, src, 8, 200) // while stopped
	s2 := newAOFShipper(t, dir, b, nil)
	r2 := run(t, s2)
	defer r2.cancel()
	load(t, src, 9, 200)
	d := src.Digest(context.Background())
	gen2, off := aofDurable(t, src, dir, s2)
	r2.stop(t)
	if gen2 != gen1 {
		t.Fatalf("restart started generation %s, want %s resumed", gen2, gen1)
	}
	gens := checkRepo(t, b, "")
	if len(gens) != 1 || gens[0].Ended {
		t.Fatalf("generations %+v", gens)
	}
	segs, err := catalog.ListSegments(context.Background(), b, gen1)
	if err != nil {
		t.Fatal(err)
	}
	if gaps := catalog.Contiguity(gens[0], segs); len(gaps) != 0 {
		t.Fatalf("gaps %+v", gaps)
	}
	if got := pitrDigest(t, b, gen1, off); got != d {
		t.Errorf("digest %s, source %s", got, d)
	}
}

// TestShipper_AOFDirTornTail feeds a partial command and an unfinished
// transaction at the end of the last incr file: nothing is shipped past the
// last complete unit until the rest arrives.
func TestShipper_AOFDirTornTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "appendonlydir")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A base RDB from a real server.
	src := redistest.Start(t)
	redistest.Populate(t, src, 10)
	if err := src.Client().Save(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	rdbData, err := os.ReadFile(filepath.Join(src.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("appendonly.aof.1.base.rdb", rdbData)
	write("appendonly.aof.manifest", []byte("file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"))
	full := "#TS:1795520462\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n"
	tx := "*1\r\n$5\r\nMULTI\r\n#TS:1795520463\r\n*3\r\n$3\r\nset\r\n$1\r\nb\r\n$1\r\n2\r\n"
	rest := "*1\r\n$4\r\nEXEC\r\n"
	partial := "*3\r\n$3\r\nset\r\n$1\r\nc\r\n$1\r\n3\r\n"
	write("appendonly.aof.1.incr.aof", []byte(full+tx))

	b := mem.New()
	s := newAOFShipper(t, dir, b, nil)
	s.PinDir = filepath.Join(t.TempDir(), "pin")
	r := run(t, s)
	defer r.cancel()
	waitFor(t, 30*time.Second, "the first unit", func() bool { return s.Stats().DurableOffset == int64(len(full)) })
	f, err := os.OpenFile(filepath.Join(dir, "appendonly.aof.1.incr.aof"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(rest + partial[:10]); err != nil {
		t.Fatal(err)
	}
	want := int64(len(full + tx + rest))
	waitFor(t, 30*time.Second, "the transaction", func() bool { return s.Stats().DurableOffset == want })
	if _, err := f.WriteString(partial[10:]); err != nil {
		t.Fatal(err)
	}
	want += int64(len(partial))
	waitFor(t, 30*time.Second, "the last command", func() bool { return s.Stats().DurableOffset == want })
	r.stop(t)
	gens := checkRepo(t, b, "")
	segs, err := catalog.ListSegments(context.Background(), b, gens[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, sg := range segs {
		if err := pitr.CheckSegment(context.Background(), b, nil, sg); err != nil {
			t.Errorf("segment %d-%d: %v", sg.Start, sg.End, err)
		}
	}
	var cmds []string
	for _, sg := range segs {
		for _, c := range checkSegment(t, b, sg) {
			cmds = append(cmds, string(bytes.Join(c, []byte(" "))))
		}
		// The transaction's time is its MULTI's, also when it was read
		// again after waiting for its EXEC.
		want := int64(1795520462000)
		if sg.Start >= int64(len(full+tx+rest)) {
			want = 1795520463000
		}
		if sg.FirstMs != want {
			t.Errorf("segment %d-%d first ms %d, want the #TS time %d", sg.Start, sg.End, sg.FirstMs, want)
		}
	}
	if got := strings.Join(cmds, ";"); got != "SELECT 0;set a 1;MULTI;set b 2;EXEC;set c 3" {
		t.Errorf("commands %q", got)
	}
}

// TestShipper_AOFDirRewriteWhileStopped: a rewrite while no shipper runs
// ends the open generation (saying so) and starts one from the new base.
func TestShipper_AOFDirRewriteWhileStopped(t *testing.T) {
	src, dir := startAOFSource(t, true)
	b := mem.New()
	s := newAOFShipper(t, dir, b, nil)
	r := run(t, s)
	load(t, src, 10, 100)
	gen1, _ := aofDurable(t, src, dir, s)
	r.stop(t)

	base1, _ := aofEnd(t, dir)
	waitRewrite(t, src, dir, base1)
	load(t, src, 11, 100)
	d := src.Digest(context.Background())
	s2 := newAOFShipper(t, dir, b, nil)
	r2 := run(t, s2)
	defer r2.cancel()
	gen2, off := aofDurable(t, src, dir, s2)
	r2.stop(t)
	gens := checkRepo(t, b, "")
	if len(gens) != 2 || gens[0].ID != gen1 || gens[1].ID != gen2 || !gens[0].Ended ||
		!strings.Contains(gens[0].EndReason, "not shipping") || gens[1].Ended {
		t.Fatalf("generations %+v", gens)
	}
	if got := pitrDigest(t, b, gen2, off); got != d {
		t.Errorf("digest %s, source %s", got, d)
	}
}

// TestShipper_AOFDirRESPBase refuses a RESP base with an error saying what
// to do.
func TestShipper_AOFDirRESPBase(t *testing.T) {
	src := redistest.Start(t, "--appendonly", "yes", "--aof-use-rdb-preamble", "no")
	s := newAOFShipper(t, filepath.Join(src.Dir, "appendonlydir"), mem.New(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Run(ctx)
	if !errors.Is(err, ErrAOFUnsupported) || !strings.Contains(err.Error(), "aof-use-rdb-preamble yes") {
		t.Fatalf("Run: %v", err)
	}
}
