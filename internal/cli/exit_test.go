package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every usage error exits 2, in every verb: an unknown verb, an unknown
// flag, an unsupported repository scheme, a configuration that does not
// parse.
func TestUsageErrors_Exit2(t *testing.T) {
	dir := t.TempDir()
	cfg := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := [][]string{
		{"frob"},
		{"restor", "--repo", dir},
		{"verify", "--repo", "ftp://h/x"},
		{"list", "--repo", "ftp://h/x"},
		{"drill", "--repo", "ftp://h/x"},
		{"restore", "--repo", "ftp://h/x", "--latest", "--to-rdb", filepath.Join(dir, "x.rdb")},
		{"prune", "--repo", "ftp://h/x"},
		{"log", "--repo", "ftp://h/x"},
		{"verify", "--repo", "s3://bucket/p?colour=red"},
		{"verify", "--repo", "file://remote/x"},
		{"agent", "--config", cfg("syntax.yaml", "sources: [\n"), "--check-config"},
		{"agent", "--config", cfg("dup.yaml", "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\nsources:\n  - name: a\n    source: redis://127.0.0.1:1\n    repo: "+dir+"\n"), "--check-config"},
	}
	for _, v := range verbs(&env{}) {
		cases = append(cases, []string{v.Name(), "--no-such-flag"})
		for _, sub := range v.Commands() {
			cases = append(cases, []string{v.Name(), sub.Name(), "--no-such-flag"})
		}
	}
	for _, args := range cases {
		code, out, errs := runPITRCLI(t, args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want 2\n%s%s", args, code, out, errs)
		}
	}
	code, _, errs := runPITRCLI(t, "restor")
	if !strings.Contains(errs, "did you mean restore?") {
		t.Errorf("no suggestion: exit %d %s", code, errs)
	}
	if code, out, _ := runPITRCLI(t); code != ExitOK || !strings.Contains(out, "Usage:") {
		t.Errorf("no arguments: exit %d, want the help\n%s", code, out)
	}
}

// An --identity file that cannot be read is a usage error (exit 2) in
// every verb that takes one, naming the flag.
func TestUsageErrors_IdentityFile(t *testing.T) {
	r := newPITRRepo(t)
	repo := "file://" + r.dir
	bad := filepath.Join(t.TempDir(), "no-such-key.txt")
	for _, args := range [][]string{
		{"drill", "--repo", repo, "--identity", bad},
		{"verify", "--repo", repo, "--identity", bad},
		{"rekey", "--repo", repo, "--identity", bad, "--encrypt-to", "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"},
		{"log", "--repo", repo, "--identity", bad},
		{"restore", "--repo", repo, "--identity", bad, "--latest", "--to-rdb", filepath.Join(t.TempDir(), "x.rdb")},
		{"restore", "--repo", repo, "--identity", bad, "--at", "latest", "--to-dir", t.TempDir()},
		{"ui", "--repo", repo, "--identity", bad, "--listen", "127.0.0.1:0"},
		{"snapshot", "--from-log", "--repo", repo, "--identity", bad},
	} {
		code, out, errs := runPITRCLI(t, args...)
		if code != ExitUsage || !strings.Contains(errs, "--identity") {
			t.Errorf("%v: exit %d, want 2 naming --identity\n%s%s", args[0], code, out, errs)
		}
	}
}
