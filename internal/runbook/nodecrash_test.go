package runbook

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNodeCrash stages a server with data, a repository with a snapshot and
// shipping, kills it with SIGKILL, and runs node-crash.md along each of its
// paths: A restart from the kept data dir, B point-in-time restore to the
// newest durable point (dir lost), C newest snapshot (dir lost).
func TestNodeCrash(t *testing.T) {
	rb := load(t, "node-crash.md")
	if got := rb.Paths(); len(got) != 3 {
		t.Fatalf("node-crash.md paths %v, want local, pitr, snapshot", got)
	}
	for _, path := range []string{"local", "pitr", "snapshot"} {
		t.Run(path, func(t *testing.T) {
			need(t, "ship", "--ack")
			need(t, "log", "--command")
			need(t, "restore", "--at")
			s := newServer(t, "appendonly", "yes", "appendfsync", "everysec")
			s.start(t)
			repo := "file://" + filepath.Join(t.TempDir(), "repo")
			fill(t, s, "base", 20000)
			redback(t, "snapshot", "--source", s.url(), "--repo", repo)
			atSnapshot := s.digest(t)
			ship(t, s, repo)
			fill(t, s, "later", 2000) // after the snapshot: only the AOF and the log have these
			s.durable(t, repo)
			before := s.digest(t)
			keys := s.keys(t)
			s.kill9(t)
			if path != "local" {
				// the disk is lost
				if err := os.RemoveAll(s.Dir); err != nil {
					t.Fatal(err)
				}
			}
			vars := map[string]string{
				"{{PORT}}": itoa(s.Port), "{{DIR}}": s.Dir, "{{REDIS_CONF}}": s.Conf, "{{LOG}}": s.LogFile,
				"{{REPO}}": repo, "{{SAFE}}": filepath.Join(t.TempDir(), "crashed"),
			}
			rto := run(t, "node-crash.md", rb, path, vars)
			want := before
			if path == "snapshot" {
				want = atSnapshot
			}
			if got := s.digest(t); got != want {
				t.Fatalf("after the runbook (path %s): DEBUG DIGEST %s, want %s (before the crash %s, at the snapshot %s)", path, got, want, before, atSnapshot)
			}
			report(t, "node-crash/"+path, rto, keys)
		})
	}
}

// TestNodeCrash_FailingRestoreStops runs path B of node-crash.md with a
// `redback restore` that fails (exit 3): the block must stop there, so no
// server is started on the empty data dir (which shipping would store as a
// new, empty generation) and no later block runs.
func TestNodeCrash_FailingRestoreStops(t *testing.T) {
	need(t, "ship", "--ack")
	need(t, "restore", "--at")
	rb := load(t, "node-crash.md")
	s := newServer(t, "appendonly", "yes", "appendfsync", "everysec")
	s.start(t)
	repo := "file://" + filepath.Join(t.TempDir(), "repo")
	fill(t, s, "base", 2000)
	redback(t, "snapshot", "--source", s.url(), "--repo", repo)
	ship(t, s, repo)
	fill(t, s, "later", 200)
	s.durable(t, repo)
	s.kill9(t)
	for _, p := range []string{s.Dir, s.PidFile} { // the disk is lost; a started server would write a new pid file
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	// A redback whose restore fails as a damaged log segment makes it fail.
	fake := t.TempDir()
	script := "#!/bin/sh\nif [ \"$1\" = restore ]; then echo 'redback: injected failure: segment damaged' >&2; exit 3; fi\nexec " +
		filepath.Join(binDir, "redback") + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(fake, "redback"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"{{PORT}}": itoa(s.Port), "{{DIR}}": s.Dir, "{{REDIS_CONF}}": s.Conf, "{{LOG}}": s.LogFile,
		"{{REPO}}": repo, "{{SAFE}}": filepath.Join(t.TempDir(), "crashed"),
	}
	b, out, err := runBlocks(t, "node-crash.md", rb, "pitr", vars, fake)
	if err == nil {
		t.Fatal("path B ran to its end although restore failed")
	}
	if !strings.Contains(b.Code, "redback restore") || !strings.Contains(out, "injected failure") {
		t.Fatalf("stopped at the block at line %d, want the restore block:\n%s\n--- output:\n%s", b.Line, b.Code, out)
	}
	if _, err := os.Stat(s.PidFile); err == nil {
		t.Fatalf("a redis-server was started (pid file %s) after the failed restore:\n%s", s.PidFile, out)
	}
	if c, err := net.DialTimeout("tcp", s.addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("something answers on %s after the failed restore", s.addr())
	}
}
