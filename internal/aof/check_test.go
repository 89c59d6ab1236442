package aof

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/redistest"
)

// toolResult is what the real redis-check-aof printed and returned.
type toolResult struct {
	exit     int
	out      string
	analyzed bool
	size     int64
	okUpTo   int64
	okLine   int64
	diff     int64
}

var analyzedRE = regexp.MustCompile(`AOF analyzed: filename=.*, size=(\d+), ok_up_to=(\d+), ok_up_to_line=(\d+), diff=(\d+)`)

func runTool(t *testing.T, stdin string, args ...string) toolResult {
	t.Helper()
	cmd := exec.Command(redistest.Tool(t, "redis-check-aof"), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	r := toolResult{out: string(out)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("redis-check-aof %v: %v", args, err)
	}
	// The last "AOF analyzed" line is the one of the file that decided.
	if m := analyzedRE.FindAllStringSubmatch(r.out, -1); m != nil {
		last := m[len(m)-1]
		r.analyzed = true
		r.size, _ = strconv.ParseInt(last[1], 10, 64)
		r.okUpTo, _ = strconv.ParseInt(last[2], 10, 64)
		r.okLine, _ = strconv.ParseInt(last[3], 10, 64)
		r.diff, _ = strconv.ParseInt(last[4], 10, 64)
	}
	return r
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// waitNextSecond returns once the unix second changed (bounded).
func waitNextSecond() {
	now := time.Now().Unix()
	for i := 0; i < 300 && time.Now().Unix() == now; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// genAOF runs a real redis-server with AOF and timestamps on, writes
// several types, MULTI/EXEC, two dbs and a BGREWRITEAOF, and returns its
// appendonlydir after a clean stop.
func genAOF(t *testing.T, preamble bool) string {
	t.Helper()
	s := redistest.Start(t, "--appendonly", "yes", "--aof-timestamp-enabled", "yes",
		"--aof-use-rdb-preamble", yesno(preamble), "--auto-aof-rewrite-percentage", "0")
	ctx := t.Context()
	c := s.Client()
	c1 := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: 1, DisableIdentity: true})
	defer c1.Close()
	big := strings.Repeat("x\r\n*3\r\n$3\r\nset\r\n", 40)
	phase := func(p int) {
		k := func(n string) string { return fmt.Sprintf("%s:%d", n, p) }
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(c.Set(ctx, k("str"), "v"+k("s"), 0).Err())
		must(c.Set(ctx, k("big"), big, 0).Err())
		must(c.RPush(ctx, k("list"), "a", "b", "c").Err())
		must(c.SAdd(ctx, k("set"), "m1", "m2").Err())
		must(c.ZAdd(ctx, k("zset"), redis.Z{Score: 1.5, Member: "z"}).Err())
		must(c.HSet(ctx, k("hash"), "f", "v", "g", "w").Err())
		must(c.XAdd(ctx, &redis.XAddArgs{Stream: k("stream"), Values: []string{"a", "1"}}).Err())
		must(c.Expire(ctx, k("str"), time.Hour).Err())
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Incr(ctx, k("ctr"))
			p.Set(ctx, k("tx"), "in-multi", 0)
			p.LPush(ctx, k("list"), "z")
			return nil
		})
		must(err)
		must(c1.Set(ctx, k("db1"), "one", 0).Err())
		must(c.Del(ctx, k("set")).Err())
	}
	phase(0)
	waitNextSecond()
	phase(1)
	if err := c.BgRewriteAOF(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		info, err := c.Info(ctx, "persistence").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	phase(2)
	waitNextSecond()
	phase(3)
	waitNextSecond()
	phase(4)
	s.Stop()
	return filepath.Join(s.Dir, "appendonlydir")
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func findFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if len(m) == 0 {
		t.Fatalf("no *%s in %s", suffix, dir)
	}
	return m[len(m)-1]
}

type damage struct {
	name string
	data []byte
	torn bool // expected to be a torn tail (or valid)
}

// damages returns many damaged variants of a valid AOF.
func damages(valid []byte) []damage {
	var out []damage
	stride := 1
	if len(valid) > 160 {
		stride = len(valid)/160 + 1
	}
	for n := 1; n < len(valid); n += stride {
		out = append(out, damage{name: fmt.Sprintf("truncate-%d", n), data: valid[:n:n], torn: true})
	}
	// Cuts right inside every MULTI and every #TS line.
	for _, pat := range []string{"MULTI\r\n", "#TS:", "EXEC"} {
		for i := 0; ; {
			j := bytes.Index(valid[i:], []byte(pat))
			if j < 0 {
				break
			}
			at := i + j + 2
			out = append(out, damage{name: fmt.Sprintf("truncate-in-%s-%d", strings.TrimSpace(pat), at), data: valid[:at:at], torn: true})
			i += j + 1
		}
	}
	put := func(name string, at int, repl []byte, del int) {
		if at < 0 || at+del > len(valid) {
			return
		}
		b := append([]byte{}, valid[:at]...)
		b = append(b, repl...)
		b = append(b, valid[at+del:]...)
		out = append(out, damage{name: name, data: b})
	}
	for _, frac := range []int{5, 17, 33, 50, 71, 90} {
		at := len(valid) * frac / 100
		put(fmt.Sprintf("garbage-%d", at), at, []byte("garbage!"), 8)
		put(fmt.Sprintf("zeros-%d", at), at, make([]byte, 4), 4)
		if i := bytes.Index(valid[at:], []byte("\r\n")); i >= 0 {
			put(fmt.Sprintf("missing-crlf-%d", at+i), at+i, nil, 2)
		}
		if i := bytes.Index(valid[at:], []byte("\r\n$")); i >= 0 {
			p := at + i + 3
			e := bytes.IndexByte(valid[p:], '\r')
			put(fmt.Sprintf("bad-len-big-%d", p), p, []byte("99999"), e)
			put(fmt.Sprintf("bad-len-small-%d", p), p, []byte("1"), e)
			put(fmt.Sprintf("bad-len-neg-%d", p), p, []byte("-5"), e)
			put(fmt.Sprintf("bad-len-huge-%d", p), p, []byte("9223372036854775806"), e)
		}
		if i := bytes.Index(valid[at:], []byte("\r\n*")); i >= 0 {
			put(fmt.Sprintf("bad-argc-%d", at+i+3), at+i+3, []byte("x"), 0)
		}
	}
	if i := bytes.Index(valid, []byte("EXEC")); i >= 0 {
		// Drop the EXEC command: an unexpected nested MULTI follows.
		s := bytes.LastIndex(valid[:i], []byte("*1\r\n"))
		put("drop-exec", s, nil, i+6-s)
	}
	if i := bytes.Index(valid, []byte("MULTI")); i >= 0 {
		s := bytes.LastIndex(valid[:i], []byte("*1\r\n"))
		put("drop-multi", s, nil, i+7-s)
	}
	out = append(out, damage{name: "long-annotation", data: append(append([]byte("#"), bytes.Repeat([]byte("a"), 1100)...), append([]byte("\r\n"), valid...)...)})
	out = append(out, damage{name: "garbage-tail", data: append(append([]byte{}, valid...), "hello"...)})
	return out
}

// compareWithTool checks one damaged file with redis-check-aof and Check,
// without and with fixing, and compares verdicts, offsets and bytes.
func compareWithTool(t *testing.T, dir string, d damage, i int) {
	t.Helper()
	p := func(s string) string { return filepath.Join(dir, fmt.Sprintf("c%d-%s.aof", i, s)) }
	for _, s := range []string{"tool", "toolfix", "ours", "oursfix", "ourstorn"} {
		if err := os.WriteFile(p(s), d.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tool := runTool(t, "", p("tool"))
	toolFix := runTool(t, "y\n", "--fix", p("toolfix"))

	rep, err := Check(p("ours"), CheckOptions{})
	if err != nil {
		t.Fatalf("%s: Check: %v\ntool:\n%s", d.name, err, tool.out)
	}
	fr := rep.Files[0]
	toolValid := tool.exit == 0
	if rep.Valid() != toolValid {
		t.Fatalf("%s: valid=%v, redis-check-aof exit %d:\n%s\nours: %+v", d.name, rep.Valid(), tool.exit, tool.out, fr)
	}
	if tool.analyzed {
		if fr.Size != tool.size || fr.OKUpTo != tool.okUpTo || fr.OKUpToLine != tool.okLine || fr.Diff != tool.diff {
			t.Fatalf("%s: ours size=%d ok_up_to=%d line=%d diff=%d; tool:\n%s", d.name, fr.Size, fr.OKUpTo, fr.OKUpToLine, fr.Diff, tool.out)
		}
	}
	if !toolValid && fr.ToolMessage != "" && !strings.Contains(tool.out, strings.ReplaceAll(fr.ToolMessage, "-ours", "-tool")) && !strings.Contains(fr.ToolMessage, "Expected \\r\\n") {
		t.Errorf("%s: tool message %q not in:\n%s", d.name, fr.ToolMessage, tool.out)
	}
	if d.torn && !toolValid && fr.Damage != DamageTornTail {
		t.Errorf("%s: damage %v, want torn tail (%v)", d.name, fr.Damage, fr.Err)
	}
	if !toolValid && (fr.Err == nil || fr.Err.File == "") {
		t.Errorf("%s: no CorruptionError", d.name)
	}

	// Fixing everything matches redis-check-aof --fix byte for byte.
	if _, err := Check(p("oursfix"), CheckOptions{Fix: true, FixCorruption: true}); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(p("toolfix"))
	got, _ := os.ReadFile(p("oursfix"))
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: fixed file differs: ours %d bytes, redis-check-aof %d bytes (exit %d)", d.name, len(got), len(want), toolFix.exit)
	}
	// Fixing only torn tails leaves corruption alone.
	rep2, err := Check(p("ourstorn"), CheckOptions{Fix: true})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(p("ourstorn"))
	switch {
	case toolValid && !bytes.Equal(got, d.data):
		t.Fatalf("%s: valid file changed", d.name)
	case !toolValid && fr.Damage == DamageTornTail && (!bytes.Equal(got, want) || !rep2.Valid()):
		t.Fatalf("%s: torn tail not fixed like redis-check-aof", d.name)
	case !toolValid && fr.Damage == DamageCorrupt && (!bytes.Equal(got, d.data) || rep2.Valid()):
		t.Fatalf("%s: corruption fixed without FixCorruption", d.name)
	}
	for _, s := range []string{"tool", "toolfix", "ours", "oursfix", "ourstorn"} {
		_ = os.Remove(p(s))
	}
}

// TestCheck_RealAOF builds one AOF set with a real server and compares
// Check with redis-check-aof on many damaged copies of it.
func TestCheck_RealAOF(t *testing.T) {
	aofDir := genAOF(t, false)
	t.Run("Damages", func(t *testing.T) { testMatchesRedisCheckAOF(t, aofDir) })
	t.Run("MultiPart", func(t *testing.T) { testMultiPart(t, aofDir) })
	t.Run("TruncateToTimestamp", func(t *testing.T) { testTruncateToTimestamp(t, aofDir) })
}

func testMatchesRedisCheckAOF(t *testing.T, aofDir string) {
	incr, err := os.ReadFile(findFile(t, aofDir, ".incr.aof"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(findFile(t, aofDir, ".base.aof"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(incr, []byte("#TS:")) || !bytes.Contains(incr, []byte("MULTI")) {
		t.Fatalf("generated incr AOF lacks #TS or MULTI:\n%q", incr)
	}
	work := t.TempDir()
	n := 0
	deadline := time.Now().Add(20 * time.Second)
	for _, src := range []struct {
		name string
		data []byte
	}{{"incr", incr}, {"base", base}} {
		for _, d := range damages(src.data) {
			if time.Now().After(deadline) {
				t.Logf("time budget reached after %d cases", n)
				return
			}
			d.name = src.name + "/" + d.name
			compareWithTool(t, work, d, n)
			n++
		}
	}
	t.Logf("%d damaged files compared with redis-check-aof", n)
}

func TestCheck_RDBPreambleMatchesRedisCheckAOF(t *testing.T) {
	aofDir := genAOF(t, true)
	rdbPart, err := os.ReadFile(findFile(t, aofDir, ".base.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	incr, err := os.ReadFile(findFile(t, aofDir, ".incr.aof"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	// An upgraded pre-7.0 appendonly.aof: the RDB preamble, then RESP.
	whole := append(append([]byte{}, rdbPart...), incr...)
	n := 0
	deadline := time.Now().Add(10 * time.Second)
	for _, d := range damages(whole) {
		if time.Now().After(deadline) {
			break
		}
		if len(d.data) <= len(rdbPart) || strings.HasPrefix(d.name, "long-annotation") {
			d.torn = false // damage inside the RDB part is never a torn tail
		}
		if !bytes.Equal(d.data[:min(5, len(d.data))], []byte("REDIS")) && len(d.data) >= 8 {
			continue // damaged magic: a plain RESP file, covered elsewhere
		}
		compareWithTool(t, work, d, n)
		n++
	}
	// Clean file: the RESP tail starts right after the RDB.
	p := filepath.Join(work, "ok.aof")
	if err := os.WriteFile(p, whole, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(p, CheckOptions{})
	if err != nil || !rep.Valid() || rep.Kind != InputRDBPreamble || rep.Files[0].Format != "rdb" {
		t.Fatalf("clean preamble file: %v %+v", err, rep)
	}
	t.Logf("%d damaged preamble files compared", n)
}

// setupMultiPart copies an appendonlydir and returns the manifest path and
// the base and last incr paths.
func setupMultiPart(t *testing.T, src string) (manifest string, files []string) {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
	manifest = findFile(t, dst, ".manifest")
	f, err := os.Open(manifest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ParseManifest(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range m.LoadOrder() {
		files = append(files, filepath.Join(dst, mf.Name))
	}
	return manifest, files
}

func testMultiPart(t *testing.T, aofDir string) {

	// Valid set.
	man, _ := setupMultiPart(t, aofDir)
	tool := runTool(t, "", man)
	rep, err := Check(man, CheckOptions{})
	if err != nil || tool.exit != 0 || !rep.Valid() || rep.Kind != InputManifest || len(rep.Files) != 2 {
		t.Fatalf("valid set: err=%v tool exit %d valid=%v files=%d\n%s", err, tool.exit, rep != nil && rep.Valid(), len(rep.Files), tool.out)
	}
	if rep.Files[1].OKUpToLine != tool.okLine {
		t.Fatalf("ok_up_to_line across files: ours %d, tool %d", rep.Files[1].OKUpToLine, tool.okLine)
	}

	// Torn tail in the last file: fixed identically.
	manT, filesT := setupMultiPart(t, aofDir)
	manO, filesO := setupMultiPart(t, aofDir)
	last := filesT[len(filesT)-1]
	b, _ := os.ReadFile(last)
	cut := len(b) - 7
	for _, p := range []string{last, filesO[len(filesO)-1]} {
		if err := os.WriteFile(p, b[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tool = runTool(t, "y\n", "--fix", manT)
	rep, err = Check(manO, CheckOptions{Fix: true})
	if err != nil || tool.exit != 0 || !rep.Valid() || !rep.Files[1].Fixed {
		t.Fatalf("torn last file: err=%v exit %d report %+v\n%s", err, tool.exit, rep, tool.out)
	}
	want, _ := os.ReadFile(last)
	got, _ := os.ReadFile(filesO[len(filesO)-1])
	if !bytes.Equal(got, want) {
		t.Fatalf("fixed last file differs from redis-check-aof's")
	}

	// Damage in the base (not the last file): never fixed.
	manT, filesT = setupMultiPart(t, aofDir)
	manO, filesO = setupMultiPart(t, aofDir)
	b, _ = os.ReadFile(filesT[0])
	for _, p := range []string{filesT[0], filesO[0]} {
		if err := os.WriteFile(p, b[:len(b)-5], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tool = runTool(t, "y\n", "--fix", manT)
	rep, err = Check(manO, CheckOptions{Fix: true, FixCorruption: true})
	if err != nil {
		t.Fatal(err)
	}
	if tool.exit != 1 || rep.Valid() || rep.Files[0].Fixed || len(rep.Unchecked) != 1 {
		t.Fatalf("damaged base: tool exit %d, ours %+v\n%s", tool.exit, rep, tool.out)
	}
	if rep.Files[0].OKUpTo != tool.okUpTo || rep.Files[0].OKUpToLine != tool.okLine {
		t.Fatalf("damaged base: ours ok_up_to=%d line=%d\n%s", rep.Files[0].OKUpTo, rep.Files[0].OKUpToLine, tool.out)
	}
	got, _ = os.ReadFile(filesO[0])
	if !bytes.Equal(got, b[:len(b)-5]) {
		t.Fatal("non-last file was changed")
	}

	// A file listed but missing.
	manO, filesO = setupMultiPart(t, aofDir)
	os.Remove(filesO[1])
	if _, err := Check(manO, CheckOptions{}); err == nil {
		t.Fatal("missing incr file: no error")
	}
}

// testTruncateToTimestamp cuts at every timestamp around the #TS
// annotations of a real incr file and compares with redis-check-aof.
func testTruncateToTimestamp(t *testing.T, aofDir string) {
	incr, err := os.ReadFile(findFile(t, aofDir, ".incr.aof"))
	if err != nil {
		t.Fatal(err)
	}
	var stamps []int64
	for _, m := range regexp.MustCompile(`#TS:(\d+)`).FindAllSubmatch(incr, -1) {
		v, _ := strconv.ParseInt(string(m[1]), 10, 64)
		stamps = append(stamps, v)
	}
	if len(stamps) < 2 {
		t.Fatalf("want at least 2 #TS annotations, got %d", len(stamps))
	}
	work := t.TempDir()
	ts := []int64{stamps[0] - 1, -5}
	for _, s := range stamps {
		ts = append(ts, s, s+1)
	}
	for i, T := range ts {
		pt := filepath.Join(work, fmt.Sprintf("t%d-tool.aof", i))
		po := filepath.Join(work, fmt.Sprintf("t%d-ours.aof", i))
		os.WriteFile(pt, incr, 0o644)
		os.WriteFile(po, incr, 0o644)
		tool := runTool(t, "", "--truncate-to-timestamp", strconv.FormatInt(T, 10), pt)
		rep, err := Check(po, CheckOptions{TruncateToTimestamp: T})
		var te *TimestampError
		switch {
		case tool.exit == 0 && err != nil:
			t.Fatalf("T=%d: %v\n%s", T, err, tool.out)
		case tool.exit != 0 && !errors.As(err, &te):
			t.Fatalf("T=%d: tool exit %d, ours %v %+v\n%s", T, tool.exit, err, rep, tool.out)
		}
		want, _ := os.ReadFile(pt)
		got, _ := os.ReadFile(po)
		if !bytes.Equal(got, want) {
			t.Fatalf("T=%d: ours %d bytes, redis-check-aof %d bytes\n%s", T, len(got), len(want), tool.out)
		}
	}

	// Only the last file of a set may be cut.
	man, files := setupMultiPart(t, aofDir)
	base, _ := os.ReadFile(files[0])
	m := regexp.MustCompile(`#TS:(\d+)`).FindSubmatch(base)
	if m == nil {
		t.Skip("base has no #TS")
	}
	v, _ := strconv.ParseInt(string(m[1]), 10, 64)
	// Append a later annotation and a command to the base.
	extra := fmt.Appendf(nil, "#TS:%d\r\n*1\r\n$4\r\nPING\r\n", v+100)
	os.WriteFile(files[0], append(base, extra...), 0o644)
	manT, filesT := setupMultiPart(t, filepath.Dir(man))
	tool := runTool(t, "", "--truncate-to-timestamp", strconv.FormatInt(v+50, 10), manT)
	_, err = Check(man, CheckOptions{TruncateToTimestamp: v + 50})
	var te *TimestampError
	if tool.exit != 1 || !errors.As(err, &te) {
		t.Fatalf("cut in non-last file: tool exit %d, ours %v\n%s", tool.exit, err, tool.out)
	}
	_ = filesT
}
