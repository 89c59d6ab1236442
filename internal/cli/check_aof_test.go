package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"redback/internal/aof"
)

// writeAOFDir writes an appendonlydir with a manifest and one incr file of
// n SET commands, returning the dir and the incr file's path and bytes.
func writeAOFDir(t *testing.T, n int) (string, string, []byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "appendonlydir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := aof.NewWriter(&buf)
	for i := 0; i < n; i++ {
		if i%4 == 0 {
			_ = w.WriteTimestamp(1795520462 + int64(i))
		}
		_ = w.WriteCommand([]byte("SET"), []byte("k"), []byte(strings.Repeat("v", i+1)))
	}
	_ = w.Flush()
	incr := filepath.Join(dir, "appendonly.aof.1.incr.aof")
	if err := os.WriteFile(incr, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &aof.Manifest{Incr: []aof.ManifestFile{{Name: "appendonly.aof.1.incr.aof", Seq: 1, Type: aof.TypeIncr}}}
	f, err := os.Create(filepath.Join(dir, "appendonly.aof.manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return dir, incr, buf.Bytes()
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestCheckAOF(t *testing.T) {
	dir, incr, data := writeAOFDir(t, 10)

	if code, out, errs := runCLI(t, "check", "aof", dir); code != 0 || !strings.Contains(out, "AOF is valid") {
		t.Fatalf("valid dir: exit %d\n%s%s", code, out, errs)
	}

	// Torn tail: exit 3, names file/offset/line and what a fix loses.
	torn := data[:len(data)-5]
	os.WriteFile(incr, torn, 0o644)
	code, out, errs := runCLI(t, "check", "aof", dir)
	if code != ExitVerify || !strings.Contains(out, "TORN-TAIL") || !strings.Contains(out, "offset") ||
		!strings.Contains(out, "line") || !strings.Contains(out, "1 command(s)") {
		t.Fatalf("torn: exit %d\n%s%s", code, out, errs)
	}
	// --json
	code, out, _ = runCLI(t, "check", "aof", "--json", dir)
	var js struct {
		Valid bool
		Files []struct {
			Damage string `json:"damage"`
			OKUpTo int64  `json:"ok_up_to"`
			Error  *struct{ Offset, Line int64 }
		}
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || code != ExitVerify || js.Valid || js.Files[0].Damage != "torn-tail" || js.Files[0].Error == nil {
		t.Fatalf("json: exit %d err %v\n%s", code, err, out)
	}
	// --fix: no prompt, truncated, exit 0.
	code, out, errs = runCLI(t, "check", "aof", "--fix", dir)
	got, _ := os.ReadFile(incr)
	if code != 0 || !strings.Contains(out, "FIXED") || int64(len(got)) != js.Files[0].OKUpTo {
		t.Fatalf("fix: exit %d, %d bytes\n%s%s", code, len(got), out, errs)
	}

	// Corruption in the middle: --fix refuses, --fix --yes truncates.
	bad := append([]byte{}, data...)
	copy(bad[len(bad)/2:], "garbage!")
	os.WriteFile(incr, bad, 0o644)
	code, out, _ = runCLI(t, "check", "aof", "--fix", filepath.Join(dir, "appendonly.aof.manifest"))
	got, _ = os.ReadFile(incr)
	if code != ExitVerify || !bytes.Equal(got, bad) || !strings.Contains(out, "CORRUPT") {
		t.Fatalf("corrupt --fix: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "check", "aof", "--fix", "--yes", incr)
	got, _ = os.ReadFile(incr)
	if code != 0 || len(got) >= len(bad) {
		t.Fatalf("corrupt --fix --yes: exit %d, %d bytes\n%s", code, len(got), out)
	}

	// Truncate to timestamp.
	os.WriteFile(incr, data, 0o644)
	code, out, errs = runCLI(t, "check", "aof", "--truncate-to-timestamp", "1795520466", dir)
	got, _ = os.ReadFile(incr)
	if code != 0 || len(got) >= len(data) || !bytes.HasPrefix(data, got) || !bytes.HasPrefix(data[len(got):], []byte("#TS:1795520470")) {
		t.Fatalf("truncate-to-timestamp: exit %d, %d bytes\n%s%s", code, len(got), out, errs)
	}
	os.WriteFile(incr, data, 0o644)
	if code, _, errs := runCLI(t, "check", "aof", "--truncate-to-timestamp", "100", incr); code != ExitFailure {
		t.Fatalf("nothing before timestamp: exit %d %s", code, errs)
	}

	// Usage and unreadable paths.
	for _, args := range [][]string{
		{"check", "aof"},
		{"check", "aof", "--fix", "--truncate-to-timestamp", "5", dir},
		{"check", "aof", "--yes", dir},
		{"check", "aof", "--truncate-to-timestamp", "0", dir},
		{"check", "aof", "--truncate-to-timestamp", "x", dir},
	} {
		if code, _, errs := runCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errs)
		}
	}
	if code, _, _ := runCLI(t, "check", "aof", filepath.Join(dir, "nope")); code != ExitFailure {
		t.Errorf("missing file: exit %d", code)
	}
	// A damaged manifest is damaged data.
	os.WriteFile(filepath.Join(dir, "appendonly.aof.manifest"), []byte("file a seq 1 type x\n"), 0o644)
	if code, _, errs := runCLI(t, "check", "aof", dir); code != ExitVerify {
		t.Errorf("bad manifest: exit %d %s", code, errs)
	}
}

// TestCheckAOF_NonLastFileNotFixed: damage in the base of a two-file set
// is reported (exit 3) and never truncated, even with --fix --yes.
func TestCheckAOF_NonLastFileNotFixed(t *testing.T) {
	dir, incr, data := writeAOFDir(t, 6)
	base := filepath.Join(dir, "appendonly.aof.1.base.aof")
	torn := data[:len(data)-3]
	if err := os.WriteFile(base, torn, 0o644); err != nil {
		t.Fatal(err)
	}
	m := &aof.Manifest{
		Base: &aof.ManifestFile{Name: "appendonly.aof.1.base.aof", Seq: 1, Type: aof.TypeBase},
		Incr: []aof.ManifestFile{{Name: "appendonly.aof.1.incr.aof", Seq: 1, Type: aof.TypeIncr}},
	}
	f, err := os.Create(filepath.Join(dir, "appendonly.aof.manifest"))
	if err != nil {
		t.Fatal(err)
	}
	m.WriteTo(f)
	f.Close()
	code, out, errs := runCLI(t, "check", "aof", "--fix", "--yes", dir)
	got, _ := os.ReadFile(base)
	if code != ExitVerify || !bytes.Equal(got, torn) || !strings.Contains(out, "not the last file") || !strings.Contains(out, "not checked") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	_ = incr
}
