package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"redback/internal/catalog"
	"redback/internal/redistest"
	"redback/internal/snapshot"
	"redback/internal/storage/file"
)

// vdRunCLI runs redback with args and returns the exit code, stdout and stderr.
func vdRunCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// vdRepo builds a file repository holding n snapshots of a real server's
// SAVE (every type, two dbs, a function) and returns its dir and manifests.
func vdRepo(t *testing.T, n int) (string, []*catalog.Snapshot) {
	t.Helper()
	s := redistest.Start(t)
	ctx := t.Context()
	c := s.Client()
	for _, args := range [][]any{
		{"SET", "s", "v"}, {"SET", "ttl", "v", "PX", "100000000"}, {"RPUSH", "l", "a", "b"},
		{"SADD", "set", "a", "b"}, {"ZADD", "z", "1.5", "m"}, {"HSET", "h", "f", "v"},
		{"XADD", "x", "1-1", "f", "v"},
		{"FUNCTION", "LOAD", "#!lua name=vdlib\nredis.register_function('vdf', function(keys, args) return 1 end)"},
		{"SELECT", "2"}, {"SET", "other", "db"}, {"SAVE"},
	} {
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	var snaps []*catalog.Snapshot
	for range n {
		snap, err := snapshot.Store(ctx, bytes.NewReader(data), snapshot.Options{Backend: b, Method: "rdb-file"})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, snap)
	}
	return dir, snaps
}

func TestVerifyCmd(t *testing.T) {
	dir, snaps := vdRepo(t, 3)
	code, out, errs := vdRunCLI(t, "verify", "--repo", dir)
	if code != 0 || strings.Count("\n"+out, "\nok ") != 3 || !strings.Contains(out, "all good") {
		t.Fatalf("good repo: exit %d\n%s\n%s", code, out, errs)
	}

	// Bit flip in one object, another object missing.
	obj := filepath.Join(dir, filepath.FromSlash(snaps[0].Object.Key))
	raw, _ := os.ReadFile(obj)
	raw[len(raw)/3] ^= 0x40
	os.WriteFile(obj, raw, 0o644)
	os.Remove(filepath.Join(dir, filepath.FromSlash(snaps[1].Object.Key)))

	code, out, errs = vdRunCLI(t, "verify", "--repo", dir, "--json")
	if code != ExitVerify {
		t.Fatalf("damaged repo: exit %d\n%s\n%s", code, out, errs)
	}
	var res struct {
		OK       bool
		Checked  int
		Findings []struct{ Object, Severity, Code, Message string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if res.OK || res.Checked != 3 {
		t.Fatalf("json %+v", res)
	}
	found := map[string]string{}
	for _, f := range res.Findings {
		found[f.Object] += f.Code + " "
	}
	if !strings.Contains(found[snaps[0].Object.Key], "sha256") || !strings.Contains(found[snaps[1].Object.Key], "missing") || found[snaps[2].Object.Key] != "" {
		t.Fatalf("findings %v", found)
	}

	// Human output names the damaged object; only the good one passes alone.
	code, out, _ = vdRunCLI(t, "verify", "--repo", dir, snaps[0].ID)
	if code != ExitVerify || !strings.Contains(out, snaps[0].Object.Key) || !strings.Contains(out, "DAMAGED") {
		t.Fatalf("one damaged: exit %d\n%s", code, out)
	}
	if code, out, _ = vdRunCLI(t, "verify", "--repo", dir, snaps[2].ID); code != 0 {
		t.Fatalf("one good: exit %d\n%s", code, out)
	}
}

func TestVerifyCmd_Usage(t *testing.T) {
	dir, snaps := vdRepo(t, 1)
	for _, args := range [][]string{
		{"verify", "--repo", dir, "--all", snaps[0].ID},
		{"verify", "--repo", dir, "--sample", "150"},
		{"verify"},
	} {
		if code, _, errs := vdRunCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errs)
		}
	}
	missing := filepath.Join(t.TempDir(), "a-file")
	if code, _, errs := vdRunCLI(t, "verify", "--repo", missing, "--sample", "50"); code != ExitFailure || !strings.Contains(errs, "no redback repository at file://"+missing) {
		// A typo in the URL must not pass as "all good".
		t.Errorf("missing repo: exit %d, want 1: %s", code, errs)
	}
	notDir := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(notDir, []byte("x"), 0o644)
	if code, _, errs := vdRunCLI(t, "verify", "--repo", notDir); code != ExitFailure {
		t.Errorf("unreadable repo: exit %d, want 1: %s", code, errs)
	}
}
