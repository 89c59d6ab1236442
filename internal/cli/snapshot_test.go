package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"redback/internal/catalog"
	"redback/internal/redistest"
	"redback/internal/replica/replicatest"
)

func TestSnapshot_CLI(t *testing.T) {
	src := redistest.Start(t)
	keys := redistest.Populate(t, src, 100)
	want := src.Digest(t.Context())
	repo := "file://" + t.TempDir()
	for _, method := range []string{"sync", "bgsave"} {
		code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo, "--method", method, "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", method, code, errs)
		}
		var snap catalog.Snapshot
		if err := json.Unmarshal([]byte(out), &snap); err != nil {
			t.Fatalf("%s: %v\n%s", method, err, out)
		}
		if snap.Digest != want || snap.Census.Keys != int64(keys) || snap.Method != method {
			t.Fatalf("%s: digest %s keys %d method %s; want %s %d", method, snap.Digest, snap.Census.Keys, snap.Method, want, keys)
		}
	}
	code, out, errs := runCLI(t, "list", "--repo", repo, "--json")
	if code != 0 {
		t.Fatalf("list: exit %d %s", code, errs)
	}
	var l listOutput
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Snapshots) != 2 {
		t.Fatalf("list: %v %s", err, out)
	}
	code, out, _ = runCLI(t, "list", "--repo", repo)
	if code != 0 || !strings.Contains(out, want[:12]) {
		t.Fatalf("list text: %d %s", code, out)
	}
}

func TestSnapshot_BadInput(t *testing.T) {
	src := redistest.Start(t)
	redistest.Populate(t, src, 10)
	if err := src.Client().Save(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	dump, err := os.ReadFile(filepath.Join(src.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	dump[len(dump)-3] ^= 0xff // CRC
	corrupt := replicatest.NewPrimary(t, dump, replicatest.Options{})
	free := redistest.FreePort(t)

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no source", []string{"--repo", "REPO"}, ExitUsage, "--source is required"},
		{"bad method", []string{"--source", src.URL(), "--repo", "REPO", "--method", "copy"}, ExitUsage, "--method"},
		{"bad url", []string{"--source", "http://x", "--repo", "REPO"}, ExitUsage, "--source"},
		{"unreachable", []string{"--source", "redis://127.0.0.1:" + itoa(free), "--repo", "REPO"}, ExitFailure, "connection refused"},
		{"wrong password", []string{"--source", "redis://:hunter2@" + src.Addr(), "--repo", "REPO"}, ExitFailure, "auth"},
		{"tls to plain server", []string{"--source", "rediss://" + src.Addr(), "--repo", "REPO", "--tls-insecure"}, ExitFailure, ""},
		{"corrupt rdb", []string{"--source", corrupt.URL(), "--repo", "REPO"}, ExitVerify, "checksum"},
		{"bgsave remote", []string{"--source", "redis://127.0.0.1:" + itoa(free), "--repo", "REPO", "--method", "bgsave"}, ExitFailure, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"snapshot"}, tc.args...)
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "REPO", dir)
			}
			code, _, errs := runCLI(t, args...)
			if code != tc.code || !strings.Contains(strings.ToLower(errs), strings.ToLower(tc.msg)) {
				t.Fatalf("exit %d (want %d), stderr:\n%s", code, tc.code, errs)
			}
			if strings.Contains(errs, "hunter2") {
				t.Fatalf("password leaked: %s", errs)
			}
			entries, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
			if len(entries) != 0 {
				t.Fatalf("a snapshot became visible after a failure")
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSnapshot_SentinelsUnreachable: a snapshot whose sentinels cannot be
// asked fails (exit 1) before the repository records anything, as one whose
// node cannot be reached does: readers are not left asking for --name.
func TestSnapshot_SentinelsUnreachable(t *testing.T) {
	repo := t.TempDir()
	for _, source := range []string{
		fmt.Sprintf("redis+sentinel://127.0.0.1:%d/mymaster", redistest.FreePort(t)),
		fmt.Sprintf("redis://127.0.0.1:%d", redistest.FreePort(t)),
	} {
		if code, out, errs := runCLI(t, "snapshot", "--source", source, "--repo", "file://"+repo); code != ExitFailure {
			t.Fatalf("%s: exit %d, want 1\n%s%s", source, code, out, errs)
		}
		if ents, err := os.ReadDir(repo); err != nil || len(ents) != 0 {
			t.Fatalf("%s: the repository holds %v (%v) after a failed snapshot", source, ents, err)
		}
	}
}

// TestSnapshot_TLS takes a snapshot over rediss:// from a server that speaks
// only TLS, by both methods, trusting its CA with --tls-ca.
func TestSnapshot_TLS(t *testing.T) {
	src, ca := redistest.StartTLS(t)
	keys := redistest.Populate(t, src, 30)
	want := src.Digest(t.Context())
	repo := t.TempDir()
	url := "rediss://" + src.Addr()
	for _, method := range []string{"sync", "bgsave"} {
		code, out, errs := runCLI(t, "snapshot", "--source", url, "--tls-ca", ca, "--repo", repo, "--method", method, "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", method, code, errs)
		}
		var snap catalog.Snapshot
		if err := json.Unmarshal([]byte(out), &snap); err != nil || snap.Digest != want || snap.Census.Keys != int64(keys) {
			t.Fatalf("%s: %v digest %s keys %d, want %s %d", method, err, snap.Digest, snap.Census.Keys, want, keys)
		}
	}
	// Without the CA the server's certificate is not trusted: a clear failure.
	code, _, errs := runCLI(t, "snapshot", "--source", url, "--repo", repo)
	if code != ExitFailure || !strings.Contains(errs, "certificate") {
		t.Fatalf("untrusted certificate: exit %d\n%s", code, errs)
	}
}

// TestSnapshot_UnixSocket takes a snapshot over unix:///path.sock.
func TestSnapshot_UnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "redis.sock")
	src := redistest.Start(t, "--unixsocket", sock, "--unixsocketperm", "700")
	keys := redistest.Populate(t, src, 20)
	want := src.Digest(t.Context())
	for _, method := range []string{"sync", "bgsave"} {
		code, out, errs := runCLI(t, "snapshot", "--source", "unix://"+sock, "--repo", t.TempDir(), "--method", method, "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", method, code, errs)
		}
		var snap catalog.Snapshot
		if err := json.Unmarshal([]byte(out), &snap); err != nil || snap.Digest != want || snap.Census.Keys != int64(keys) {
			t.Fatalf("%s: %v digest %s, want %s", method, err, snap.Digest, want)
		}
	}
}

// TestSnapshot_FromLog: snapshot --from-log synthesizes a snapshot from a
// shipped log (refused while ship holds the source's lease), which
// restores to the source's digest; with --source, a repository without a
// log falls back to a normal snapshot and says why.
func TestSnapshot_FromLog(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "16mb")
	redistest.Populate(t, src, 50)
	repo := "file://" + t.TempDir()
	sh := startShip(t, src, repo, "--name", "cache")
	if err := src.Client().Set(t.Context(), "later", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	gen := sh.waitDurable()
	code, _, errs := runCLI(t, "snapshot", "--from-log", "--repo", repo, "--name", "cache")
	if code != ExitFailure || !strings.Contains(errs, "lease") {
		t.Fatalf("while ship runs: exit %d, want %d naming the lease:\n%s", code, ExitFailure, errs)
	}
	if code := sh.stop(); code != ExitOK {
		t.Fatalf("ship exit %d", code)
	}
	want := src.Digest(t.Context())
	code, out, errs := runCLI(t, "snapshot", "--from-log", "--repo", repo, "--json")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	var res struct {
		Snapshot catalog.Snapshot `json:"snapshot"`
		Base     string           `json:"base_snapshot"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := res.Snapshot
	if s.Method != "log" || s.Generation != gen || !s.Verified || res.Base == "" {
		t.Fatalf("manifest %+v", res)
	}
	dst := redistest.Start(t)
	if code, _, errs := runCLI(t, "restore", "--repo", repo, "--snapshot", s.ID, "--to-redis", dst.URL()); code != ExitOK {
		t.Fatalf("restore: exit %d\n%s", code, errs)
	}
	if got := dst.Digest(t.Context()); got != want {
		t.Fatalf("restored digest %s, source %s", got, want)
	}
	if code, out, _ := runCLI(t, "list", "--repo", repo); code != ExitOK || !strings.Contains(out, "log") {
		t.Fatalf("list: %d\n%s", code, out)
	}

	// No log: fall back to a normal snapshot of --source.
	other := "file://" + t.TempDir()
	code, out, errs = runCLI(t, "snapshot", "--from-log", "--source", src.URL(), "--repo", other)
	if code != ExitOK || !strings.Contains(errs, "no_log") || !strings.Contains(errs, "taking a normal snapshot") {
		t.Fatalf("fallback: exit %d\n%s%s", code, out, errs)
	}
	if l := listRepo(t, other); len(l.Snapshots) != 1 || l.Snapshots[0].Method != "sync" {
		t.Fatalf("fallback snapshot: %+v", l.Snapshots)
	}
	if code, _, _ := runCLI(t, "snapshot", "--from-log", "--repo", other+"-none"); code != ExitFailure {
		t.Fatalf("no repository: exit %d", code)
	}
	if code, _, _ := runCLI(t, "snapshot", "--source", src.URL(), "--repo", other, "--to-offset", "5"); code != ExitUsage {
		t.Fatalf("--to-offset without --from-log: exit %d", code)
	}
}
