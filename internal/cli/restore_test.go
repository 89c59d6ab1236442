package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"redback/internal/redistest"
)

func TestRestore_Usage(t *testing.T) {
	rdbPath := filepath.Join(t.TempDir(), "dump.rdb")
	os.WriteFile(rdbPath, []byte("REDIS0010"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no target", []string{"restore", "--from-rdb", rdbPath}, "exactly one target"},
		{"two targets", []string{"restore", "--from-rdb", rdbPath, "--to-dir", "/tmp", "--to-rdb", "/tmp/x.rdb"}, "exactly one target"},
		{"no source", []string{"restore", "--to-dir", "/tmp"}, "give a source"},
		{"two sources", []string{"restore", "--repo", "file:///tmp/r", "--from-rdb", rdbPath, "--to-dir", "/tmp"}, "not both"},
		{"bad map-db", []string{"restore", "--from-rdb", rdbPath, "--to-redis", "redis://127.0.0.1:1", "--map-db", "0-3"}, "FROM:TO"},
		{"bad conflict", []string{"restore", "--from-rdb", rdbPath, "--to-redis", "redis://127.0.0.1:1", "--conflict", "merge"}, "unknown conflict mode"},
		{"conflict with file", []string{"restore", "--from-rdb", rdbPath, "--to-dir", "/tmp", "--conflict", "replace"}, "--force"},
		{"db in url", []string{"restore", "--from-rdb", rdbPath, "--to-redis", "redis://127.0.0.1:1/3"}, "--map-db"},
		{"bad url", []string{"restore", "--from-rdb", rdbPath, "--to-redis", "http://x"}, "--to-redis"},
		{"bad method", []string{"restore", "--from-rdb", rdbPath, "--to-redis", "redis://127.0.0.1:1", "--method", "sync"}, "unknown method"},
		{"method with file", []string{"restore", "--from-rdb", rdbPath, "--to-dir", "/tmp", "--method", "replicate"}, "apply to --to-redis"},
		{"listen with restore", []string{"restore", "--from-rdb", rdbPath, "--to-redis", "redis://127.0.0.1:1", "--method", "restore", "--listen", "127.0.0.1:7000"}, "--listen and --advertise go with"},
		{"bad verify", []string{"restore", "--from-rdb", rdbPath, "--to-redis", "redis://127.0.0.1:1", "--verify", "none"}, "want digest or sample"},
		{"verify sample by RESTORE", []string{"restore", "--from-rdb", rdbPath, "--to-redis", "redis://127.0.0.1:1", "--method", "restore", "--verify", "sample"}, "--verify sample goes with"},
		{"verify sample to a file", []string{"restore", "--from-rdb", rdbPath, "--to-dir", "/tmp", "--verify", "sample"}, "--verify sample goes with"},
		{"bad advertise", []string{"restore", "--from-rdb", rdbPath, "--to-redis", "redis://127.0.0.1:1", "--advertise", "nohost"}, "HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCheckCLI(t, tt.args...)
			if code != ExitUsage || !strings.Contains(errs, tt.want) || !strings.Contains(errs, "Try:") {
				t.Errorf("exit %d, stderr %q; want 2 with %q and a Try: line", code, errs, tt.want)
			}
		})
	}
}

func TestRestore_FromRDB(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	c := src.Client()
	for i := range 100 {
		c.Set(ctx, "k"+strconv.Itoa(i), i, 0)
	}
	c.Do(ctx, "SAVE")
	path := filepath.Join(src.Dir, "dump.rdb")
	dst := redistest.Start(t)
	code, out, errs := runCheckCLI(t, "restore", "--from-rdb", path, "--to-redis", dst.URL(), "--json", "--match", "k1*")
	if code != ExitOK {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	var j map[string]any
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	for _, k := range []string{"keys_restored", "keys_skipped", "keys_expired", "keys_filtered", "keys_converted", "keys_failed", "failures", "bytes", "duration_seconds", "keys_per_second", "snapshot", "target"} {
		if _, ok := j[k]; !ok {
			t.Errorf("--json lacks %q", k)
		}
	}
	if j["keys_restored"].(float64) != 11 || j["keys_filtered"].(float64) != 89 || j["method"] != "replicate" || j["digest"] == "" {
		t.Errorf("json %v; want 11 keys restored by replicate, with the digest", j)
	}
	// fail mode on a non-empty target: exit 1, nothing written
	code, _, errs = runCheckCLI(t, "restore", "--from-rdb", path, "--to-redis", dst.URL())
	if code != ExitFailure || !strings.Contains(errs, "--conflict replace") {
		t.Errorf("conflict: exit %d, %s", code, errs)
	}
	code, out, errs = runCheckCLI(t, "restore", "--from-rdb", path, "--to-redis", dst.URL(), "--conflict", "skip")
	if code != ExitOK || !strings.Contains(out, "by restore: 89 keys restored, 11 skipped") || !strings.Contains(errs, "note: not restored by replication: the target holds 11 keys") {
		t.Errorf("skip: exit %d, %s %s", code, out, errs)
	}
	dir := t.TempDir()
	code, out, errs = runCheckCLI(t, "restore", "--from-rdb", path, "--to-dir", dir)
	if code != ExitOK {
		t.Fatalf("to-dir: exit %d %s %s", code, out, errs)
	}
	code, _, errs = runCheckCLI(t, "restore", "--from-rdb", path, "--to-dir", dir)
	if code != ExitFailure || !strings.Contains(errs, "--force") {
		t.Errorf("to-dir twice: exit %d %s", code, errs)
	}
	// damaged file: exit 3
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 0x10
	bad := filepath.Join(t.TempDir(), "bad.rdb")
	os.WriteFile(bad, data, 0o600)
	code, _, errs = runCheckCLI(t, "restore", "--from-rdb", bad, "--to-rdb", filepath.Join(t.TempDir(), "out.rdb"))
	if code != ExitVerify || !strings.Contains(errs, "damaged") {
		t.Errorf("damaged: exit %d %s", code, errs)
	}
}

func TestRestore_UnknownSnapshot(t *testing.T) {
	repo := t.TempDir()
	code, _, errs := runCheckCLI(t, "restore", "--repo", "file://"+repo, "--snapshot", "20260101T000000.000Z-000000", "--to-dir", t.TempDir())
	if code != ExitFailure || !strings.Contains(errs, "no redback repository at file://"+repo) {
		t.Errorf("missing repository: exit %d, %s", code, errs)
	}
}

// Damage inside a big value a filtered restore keeps (a list over the
// Reader's 1 MiB, copied into the rewritten RDB as it streams) exits 3,
// naming the key and the offset, and publishes nothing.
func TestRestore_FilteredDamagedBigValue_Exit3(t *testing.T) {
	ctx := t.Context()
	s := redistest.Start(t)
	c := s.Client()
	if err := c.ConfigSet(ctx, "rdbcompression", "no").Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40_000; i += 1000 {
		elems := make([]any, 0, 1000)
		for j := i; j < i+1000; j++ {
			elems = append(elems, "e"+strconv.Itoa(100_000+j)+"-"+strings.Repeat("x", 40))
		}
		if err := c.RPush(ctx, "big:list", elems...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.Set(ctx, "small", "v", 0)
	if err := c.Do(ctx, "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(s.Dir, "dump.rdb")
	data, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	// Element 130000 deep in the list: its 48-byte listpack string's
	// encoding byte made the listpack's end mark, in place.
	at := strings.Index(string(data), "e130000-")
	if at < 1 || data[at-1] != 0x80|48 {
		t.Fatalf("element e130000 not found as a 48-byte listpack string (at %d)", at)
	}
	f, err := os.OpenFile(bad, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteAt([]byte{0xFF}, int64(at-1))
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	code, out, errs := runCLI(t, "restore", "--from-rdb", bad, "--to-dir", dir, "--match", "big:*")
	if code != ExitVerify || !strings.Contains(errs, `key "big:list"`) || !strings.Contains(errs, "offset") {
		t.Fatalf("filtered restore of a damaged big value: exit %d, want %d naming the key and offset\n%s%s", code, ExitVerify, out, errs)
	}
	t.Logf("%s", errs)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%s holds %d entries after the failure, want none", dir, len(ents))
	}
}
