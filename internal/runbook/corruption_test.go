package runbook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCorruption runs corruption.md against a bit-flipped dump.rdb (path
// rdb: restore the last snapshot) and a torn AOF tail (path aof: fix in
// place). The server is started on the damaged files first and must refuse.
func TestCorruption(t *testing.T) {
	rb := load(t, "corruption.md")
	for _, path := range []string{"rdb", "aof"} {
		t.Run(path, func(t *testing.T) {
			var s *server
			if path == "rdb" {
				s = newServer(t, "appendonly", "no")
			} else {
				s = newServer(t, "appendonly", "yes", "aof-load-truncated", "no")
			}
			s.start(t)
			repo := "file://" + filepath.Join(t.TempDir(), "repo")
			fill(t, s, "base", 20000)
			want := s.digest(t)
			keys := s.keys(t)
			if path == "rdb" {
				if err := s.client(t).Save(t.Context()).Err(); err != nil {
					t.Fatal(err)
				}
				redback(t, "snapshot", "--source", s.url(), "--repo", repo)
				s.kill9(t)
				flipBit(t, filepath.Join(s.Dir, "dump.rdb"))
			} else {
				redback(t, "snapshot", "--source", s.url(), "--repo", repo)
				// the last command is torn by the crash
				if err := s.client(t).Set(t.Context(), "torn", strings.Repeat("t", 20000), 0).Err(); err != nil {
					t.Fatal(err)
				}
				s.kill9(t)
				incr, _ := filepath.Glob(filepath.Join(s.Dir, "appendonlydir", "*.incr.aof"))
				if len(incr) != 1 {
					t.Fatalf("incr files %v", incr)
				}
				fi, err := os.Stat(incr[0])
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(incr[0], fi.Size()-10000); err != nil {
					t.Fatal(err)
				}
			}
			s.startRefused(t)
			vars := map[string]string{
				"{{PORT}}": itoa(s.Port), "{{DIR}}": s.Dir, "{{REDIS_CONF}}": s.Conf, "{{LOG}}": s.LogFile,
				"{{REPO}}": repo, "{{SAFE}}": filepath.Join(t.TempDir(), "damaged"),
			}
			rto := run(t, "corruption.md", rb, path, vars)
			if got := s.digest(t); got != want {
				t.Fatalf("after the runbook (path %s): DEBUG DIGEST %s, want %s", path, got, want)
			}
			report(t, "corruption/"+path, rto, keys)
		})
	}
}

// flipBit flips one bit in the middle of a file.
func flipBit(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startRefused starts the server on its damaged files and waits until it
// has exited with a loading error in its log (the symptom of the runbook).
func (s *server) startRefused(t *testing.T) {
	t.Helper()
	before, _ := os.ReadFile(s.LogFile)
	_ = os.Remove(s.PidFile)
	out, _ := runCmd("redis-server", s.Conf)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 3000 && time.Now().Before(deadline); i++ {
		log, _ := os.ReadFile(s.LogFile)
		tail := string(log[min(len(before), len(log)):])
		for _, m := range []string{"Wrong RDB checksum", "Short read", "Bad file format", "Unexpected end of file", "Internal error in RDB"} {
			if strings.Contains(tail, m) {
				killPidFile(s.PidFile)
				return
			}
		}
		if strings.Contains(tail, "Address already in use") {
			// The port the killed server freed is briefly held by
			// something else on a loaded machine: start it again.
			before = log
			time.Sleep(200 * time.Millisecond)
			out, _ = runCmd("redis-server", s.Conf)
			continue
		}
		time.Sleep(10 * time.Millisecond)
	}
	killPidFile(s.PidFile)
	log, _ := os.ReadFile(s.LogFile)
	t.Fatalf("redis-server did not refuse the damaged files (%s); log:\n%s", out, log)
}
