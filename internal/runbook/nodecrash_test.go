package runbook

import (
	"os"
	"path/filepath"
	"testing"
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
