package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/pitr/pitrtest"
	"redback/internal/redistest"
	"redback/internal/snapshot"
	"redback/internal/storage/file"
)

func runPITRCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// pitrRepo is a repository with one generation: a base with key "base",
// then SET a, SET b, FLUSHALL, SET c at 1 s intervals from t0. digests[i]
// is the source's digest after i commands; noFlush is a, b and c without
// the flush.
type pitrRepo struct {
	dir      string
	gen      string
	t0       time.Time
	cmds     []pitrtest.Cmd
	digests  []string
	noFlush  string
	startOff int64
}

func newPITRRepo(t *testing.T) *pitrRepo {
	t.Helper()
	return newPITRRepoMod(t, nil)
}

// newPITRRepoMod is newPITRRepo with mod applied to the commands (and the
// base) before they are written.
func newPITRRepoMod(t *testing.T, mod func(base *catalog.Snapshot, cmds []pitrtest.Cmd)) *pitrRepo {
	t.Helper()
	ctx := t.Context()
	src := redistest.Start(t)
	c := src.Client()
	c.Set(ctx, "base", "0", 0)
	c.HSet(ctx, "h", "f", "v")
	if err := c.Do(ctx, "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	r := &pitrRepo{dir: t.TempDir(), startOff: 1000}
	b, err := file.New(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(src.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r.gen = catalog.NewGenerationID(time.Now(), "abcdef0123456789")
	base, err := snapshot.Store(ctx, f, snapshot.Options{Backend: b, Method: "ship", Generation: r.gen})
	if err != nil {
		t.Fatal(err)
	}
	r.t0 = base.EndTime.Add(time.Second).Truncate(time.Millisecond)
	r.digests = []string{src.Digest(ctx)}
	run := [][]string{{"SET", "a", "1"}, {"SET", "b", "2"}, {"FLUSHALL"}, {"SET", "c", "3"}}
	off := r.startOff
	for i, args := range run {
		if err := c.Do(ctx, strAny(args)...).Err(); err != nil {
			t.Fatal(err)
		}
		r.digests = append(r.digests, src.Digest(ctx))
		cmd := pitrtest.Cmd{Offset: off, Ms: r.t0.Add(time.Duration(i) * time.Second).UnixMilli()}
		for _, a := range args {
			cmd.Args = append(cmd.Args, []byte(a))
		}
		off += cmd.Len()
		r.cmds = append(r.cmds, cmd)
	}
	// the same without FLUSHALL
	sh := redistest.Start(t)
	sc := sh.Client()
	for _, args := range [][]string{{"SET", "base", "0"}, {"HSET", "h", "f", "v"}, {"SET", "a", "1"}, {"SET", "b", "2"}, {"SET", "c", "3"}} {
		sc.Do(ctx, strAny(args)...)
	}
	r.noFlush = sh.Digest(ctx)
	if mod != nil {
		mod(base, r.cmds)
	}
	if _, err := pitrtest.Write(ctx, b, pitrtest.Generation{ID: r.gen, ReplID: "abcdef0123456789", StartOffset: r.startOff, BaseSnapshot: base.ID, Cmds: r.cmds, SplitAt: []int{2}}); err != nil {
		t.Fatal(err)
	}
	return r
}

func strAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func TestLog_CLI(t *testing.T) {
	r := newPITRRepo(t)
	_, out, _ := runPITRCLI(t, "log", "--repo", r.dir)
	t.Log("\n" + out)
	code, out, errs := runPITRCLI(t, "log", "--repo", r.dir, "--command", "flushall")
	if code != ExitOK || !strings.Contains(out, "FLUSHALL") || !strings.Contains(out, strconv.FormatInt(r.cmds[2].Offset, 10)) || strings.Contains(out, "SET a") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runPITRCLI(t, "log", "--repo", r.dir, "--json", "--from", strconv.FormatInt(r.t0.Unix()+1, 10))
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var names []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var j logJSON
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		if j.Generation != r.gen || j.Time.Before(r.t0.Add(time.Second)) {
			t.Errorf("line %+v", j)
		}
		names = append(names, j.Name)
	}
	if strings.Join(names, " ") != "SET FLUSHALL SET" {
		t.Errorf("names %v", names)
	}
	if code, _, errs := runPITRCLI(t, "log", "--repo", r.dir, "--from", "yesterday"); code != ExitUsage || !strings.Contains(errs, "RFC 3339") {
		t.Errorf("bad time: exit %d %s", code, errs)
	}
}

func TestRestorePITR_CLI(t *testing.T) {
	ctx := t.Context()
	r := newPITRRepo(t)

	dst := redistest.Start(t)
	code, out, errs := runPITRCLI(t, "restore", "--repo", r.dir, "--before-command", "FLUSHALL", "--to-redis", dst.URL())
	if code != ExitOK || !strings.Contains(out, "restoring to just before: FLUSHALL at "+fmtWindowTime(time.UnixMilli(r.cmds[2].Ms))) ||
		!strings.Contains(out, "offset "+strconv.FormatInt(r.cmds[2].Offset, 10)) || !strings.Contains(out, r.gen) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if got := dst.Digest(ctx); got != r.digests[2] {
		t.Errorf("before FLUSHALL: digest %s, want %s", got, r.digests[2])
	}

	// --at the second command, RFC 3339 with a fraction, into a dir
	dir := t.TempDir()
	at := time.UnixMilli(r.cmds[1].Ms).UTC().Format(time.RFC3339Nano)
	if code, out, errs := runPITRCLI(t, "restore", "--repo", r.dir, "--at", at, "--to-dir", dir); code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	s := redistest.StartInDir(t, dir, "--appendonly", "yes")
	if got := s.Digest(ctx); got != r.digests[2] {
		t.Errorf("--at %s: digest %s, want %s", at, got, r.digests[2])
	}
	s.Stop()

	// surgical undo of FLUSHALL, to an RDB file
	rdb := filepath.Join(t.TempDir(), "out.rdb")
	code, out, errs = runPITRCLI(t, "restore", "--repo", r.dir, "--at", time.UnixMilli(r.cmds[3].Ms).Format(time.RFC3339Nano),
		"--skip-command-at", strconv.FormatInt(r.cmds[2].Offset, 10), "--to-rdb", rdb, "--json")
	if code != ExitOK || !strings.Contains(errs, "warning: leaving out FLUSHALL") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	var j pitrJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil || len(j.Skipped) != 1 || j.Generation != r.gen {
		t.Fatalf("json %v %+v", err, j)
	}
	s = redistest.StartInDir(t, filepath.Dir(rdb), "--dbfilename", "out.rdb")
	if got := s.Digest(ctx); got != r.noFlush {
		t.Errorf("skip FLUSHALL: digest %s, want %s", got, r.noFlush)
	}

	// --at latest and --latest-point: the newest durable point (all four commands)
	for _, args := range [][]string{{"--at", "latest"}, {"--latest-point"}} {
		dir := t.TempDir()
		if code, out, errs := runPITRCLI(t, append([]string{"restore", "--repo", r.dir, "--to-dir", dir}, args...)...); code != ExitOK {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errs)
		}
		s := redistest.StartInDir(t, dir, "--appendonly", "yes")
		if got := s.Digest(ctx); got != r.digests[4] {
			t.Errorf("%v: digest %s, want %s", args, got, r.digests[4])
		}
		s.Stop()
	}
	// A second point-in-time restore into the same dir is refused before
	// any instructions are printed; --force replaces it.
	again := t.TempDir()
	if code, out, errs := runPITRCLI(t, "restore", "--repo", r.dir, "--at", "latest", "--to-dir", again); code != ExitOK || !strings.Contains(errs, "--appendonly yes") {
		t.Fatalf("first: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runPITRCLI(t, "restore", "--repo", r.dir, "--at", "latest", "--to-dir", again)
	if code != ExitFailure || strings.Contains(errs, "--appendonly yes") || !strings.Contains(errs, "--force") {
		t.Errorf("second: exit %d, want 1 naming --force and no instructions\n%s\n%s", code, out, errs)
	}
	if code, out, errs := runPITRCLI(t, "restore", "--repo", r.dir, "--at", "latest", "--to-dir", again, "--force"); code != ExitOK {
		t.Errorf("--force: exit %d\n%s\n%s", code, out, errs)
	}

	// A snapshot restore --to-dir into a dir with a stale appendonlydir/
	// (redis-server would load it instead of dump.rdb): refused; --force
	// moves it aside and says so.
	stale := t.TempDir()
	os.MkdirAll(filepath.Join(stale, "appendonlydir"), 0o755)
	code, out, errs = runPITRCLI(t, "restore", "--repo", r.dir, "--latest", "--to-dir", stale)
	if code != ExitFailure || !strings.Contains(errs, "appendonlydir") || !strings.Contains(errs, "--force") {
		t.Errorf("stale appendonlydir: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(stale, "dump.rdb")); err == nil {
		t.Error("dump.rdb written next to a stale appendonlydir")
	}
	code, out, errs = runPITRCLI(t, "restore", "--repo", r.dir, "--latest", "--to-dir", stale, "--force")
	if _, err := os.Stat(filepath.Join(stale, "appendonlydir")); code != ExitOK || err == nil || !strings.Contains(errs, "moved the stale") {
		t.Errorf("stale appendonlydir --force: exit %d (appendonlydir: %v)\n%s\n%s", code, err, out, errs)
	}

	// --at now+1h (the log of this test runs seconds into the future): past the newest durable point, says how far and suggests --at latest
	code, _, errs = runPITRCLI(t, "restore", "--repo", r.dir, "--at", "now+1h", "--to-dir", t.TempDir())
	if code != ExitFailure || !strings.Contains(errs, "before it") || !strings.Contains(errs, "--at latest") {
		t.Errorf("--at now+1h: exit %d %s", code, errs)
	}

	// outside every window: exit 1, the windows named
	code, _, errs = runPITRCLI(t, "restore", "--repo", r.dir, "--at", "2001-01-01T00:00:00Z", "--to-redis", dst.URL())
	if code != ExitFailure || !strings.Contains(errs, "outside every recoverable window") || !strings.Contains(errs, r.gen) {
		t.Errorf("outside: exit %d %s", code, errs)
	}
	for _, args := range [][]string{
		{"--at", "nope"},
		{"--at", "1795520462", "--to-offset", "5"},
		{"--key", "a*", "--at", "1795520462"},
		{"--at", "1795520462", "--snapshot", "x"},
		{"--at", "1795520462", "--match", "a*"},
		{"--to-offset", "-3"},
		{"--at", "1795520462", "--skip-command-at", "abc"},
		{"--to-redis", "redis://127.0.0.1:6379/3", "--at", "1795520462"},
		{"--latest-point", "--at", "1795520462"},
		{"--at", "now-5x"},
	} {
		code, _, errs := runPITRCLI(t, append([]string{"restore", "--repo", r.dir, "--to-redis", dst.URL()}, args...)...)
		if code != ExitUsage || !strings.Contains(errs, "Try:") {
			t.Errorf("%v: exit %d %s", args, code, errs)
		}
	}
}

func TestPrintWindows(t *testing.T) {
	r := newPITRRepo(t)
	b, err := file.New(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := pitr.Windows(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printWindows(&out, ws)
	t.Log("\n" + out.String())
	want := "newest durable point: " + fmtWindowTime(time.UnixMilli(r.cmds[3].Ms)) + " (generation " + r.gen
	if !strings.Contains(out.String(), r.gen) || !strings.Contains(out.String(), want) {
		t.Errorf("got\n%s\nwant %q", out.String(), want)
	}
	out.Reset()
	printWindows(&out, nil)
	if !strings.Contains(out.String(), "no log generations") {
		t.Errorf("empty: %q", out.String())
	}
}

func TestParseTime_Local(t *testing.T) {
	got, err := parseTime("at", "2026-11-25 14:03:12")
	want := time.Date(2026, 11, 25, 14, 3, 12, 0, time.Local)
	if err != nil || !got.Equal(want) {
		t.Fatalf("local: %v %v, want %v", got, err, want)
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // unix ms; -1 error
	}{
		{"2026-11-25T14:03:12Z", 1795615392000},
		{"2026-11-25T14:03:12.25Z", 1795615392250},
		{"2026-11-25T15:03:12.250+01:00", 1795615392250},
		{"1795615392", 1795615392000},
		{"1795615392.5", 1795615392500},
		{"1795615392.", -1},
		{"", -1},
		{"-5", -1},
		{"now", 1795615392000},
		{"now-5m", 1795615092000},
		{"NOW-1h30m", 1795615392000 - 5400000},
		{"now+90s", 1795615482000},
		{"now5m", -1},
		{"now-", -1},
		{"now--5m", -1},
		{"latest", -1}, // a point-in-time flag handles it before parseTime
	}
	now := time.UnixMilli(1795615392000)
	for _, tt := range tests {
		got, err := parseTimeAt("at", tt.in, now)
		if err != nil && ExitCode(err) != ExitUsage {
			t.Errorf("%q: exit %d for %v, want 2", tt.in, ExitCode(err), err)
		}
		switch {
		case tt.want < 0 && err == nil:
			t.Errorf("%q: no error, got %v", tt.in, got)
		case tt.want >= 0 && (err != nil || got.UnixMilli() != tt.want):
			t.Errorf("%q: %v %v (%d), want %d", tt.in, got, err, got.UnixMilli(), tt.want)
		}
	}
}

// Issue 23: every moment `redback list` prints restores. The first command
// was buffered by the primary while it sent the base (its time is only
// bounded, from before the base's transfer to its receive time), so the
// window starts where that bound ends; `restore --at` exactly each FROM and
// TO that list prints gives the source's digest at that point.
func TestRestorePITR_ListedWindowEdges(t *testing.T) {
	r := newPITRRepoMod(t, func(base *catalog.Snapshot, cmds []pitrtest.Cmd) {
		cmds[0].From = base.StartTime.UnixMilli() - 1000
	})
	code, out, errs := runPITRCLI(t, "list", "--repo", r.dir)
	if code != ExitOK {
		t.Fatalf("list: exit %d: %s", code, errs)
	}
	var from, to string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[0] == r.gen {
			from, to = f[1], f[2]
		}
	}
	if from != fmtWindowTime(time.UnixMilli(r.cmds[0].Ms)) || strings.Contains(out, "uncertain") {
		t.Fatalf("list: window from %q (want the end of the buffered command's bound, %s), no uncertain stretch:\n%s", from, fmtWindowTime(time.UnixMilli(r.cmds[0].Ms)), out)
	}
	for _, edge := range []struct {
		at   string
		want string
	}{{from, r.digests[1]}, {to, r.digests[4]}} {
		dir := t.TempDir()
		if code, out, errs := runPITRCLI(t, "restore", "--repo", r.dir, "--at", edge.at, "--to-dir", dir); code != ExitOK {
			t.Fatalf("restore --at %s (listed): exit %d\n%s\n%s", edge.at, code, out, errs)
		}
		s := redistest.StartInDir(t, dir, "--appendonly", "yes")
		if got := s.Digest(t.Context()); got != edge.want {
			t.Errorf("restore --at %s: digest %s, want %s", edge.at, got, edge.want)
		}
		s.Stop()
	}
	// Inside the bound: refused, naming the offset of the base.
	at := fmtWindowTime(time.UnixMilli(r.cmds[0].Ms - 1))
	code, _, errs = runPITRCLI(t, "restore", "--repo", r.dir, "--at", at, "--to-dir", t.TempDir())
	if code != ExitFailure || !strings.Contains(errs, "--to-offset "+strconv.FormatInt(r.startOff, 10)) {
		t.Fatalf("restore --at %s: exit %d: %s", at, code, errs)
	}
}
