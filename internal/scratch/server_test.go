package scratch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"redback/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gone fails the test unless pid has ended and dir no longer exists.
func gone(t *testing.T, pid int, dir string) {
	t.Helper()
	if pid == 0 {
		t.Fatal("no process started")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("scratch redis-server pid %d still exists (kill -0: %v)", pid, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scratch dir %s still exists (%v)", dir, err)
	}
}

// newServer makes a Server in a temp dir of the test, closed when the
// test ends; fill, when set, writes what it is to load.
func newServer(t *testing.T, fill func(dir string)) *Server {
	t.Helper()
	s, err := New(t.TempDir(), "scratch-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if fill != nil {
		fill(s.Dir)
	}
	return s
}

// serve starts s with o and waits until it serves.
func serve(t *testing.T, ctx context.Context, s *Server, o Options) {
	t.Helper()
	o.Bin = redistest.Binary(t)
	if err := s.Start(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// digest is DEBUG DIGEST of s.
func digest(t *testing.T, ctx context.Context, s *Server) string {
	t.Helper()
	c := s.Client(0)
	defer c.Close()
	d, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServer_RDB loads an RDB holding keys whose TTL has passed: the
// replica keeps them, so DEBUG DIGEST equals the source's at the SAVE.
func TestServer_RDB(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	redistest.Populate(t, src, 40)
	c := src.Client()
	for _, args := range [][]any{{"DEBUG", "SET-ACTIVE-EXPIRE", "0"}, {"SET", "short", "v", "PX", "100"}, {"SAVE"}} {
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	want := src.Digest(ctx)
	expired := time.Now().Add(150 * time.Millisecond)

	s := newServer(t, func(dir string) { copyFile(t, filepath.Join(src.Dir, "dump.rdb"), filepath.Join(dir, "dump.rdb")) })
	time.Sleep(time.Until(expired))
	serve(t, ctx, s, Options{Databases: 4})
	if got := digest(t, ctx, s); got != want {
		t.Fatalf("DEBUG DIGEST %q, the source's %q", got, want)
	}
	sc := s.Client(0)
	defer sc.Close()
	if err := sc.Set(ctx, "x", "y", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
		t.Errorf("SET on the replica: %v, want READONLY", err)
	}
	if n, err := sc.ConfigGet(ctx, "databases").Result(); err != nil || n["databases"] != "16" {
		t.Errorf("databases %v %v, want at least 16", n, err)
	}
	pid, dir := s.Pid(), s.Dir
	if s.Exited() {
		t.Fatal("exited while serving")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	gone(t, pid, dir)
	if err := s.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}
}

// TestServer_AOF loads a multi-part AOF dir written by redis-server.
func TestServer_AOF(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	redistest.Populate(t, src, 10)
	if err := src.Client().Do(ctx, "SET", "last", "1").Err(); err != nil {
		t.Fatal(err)
	}
	want := src.Digest(ctx)
	const aofDir = "appendonlydir"
	s := newServer(t, func(dir string) {
		if err := os.Mkdir(filepath.Join(dir, aofDir), 0o700); err != nil {
			t.Fatal(err)
		}
		files, err := os.ReadDir(filepath.Join(src.Dir, aofDir))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			copyFile(t, filepath.Join(src.Dir, aofDir, f.Name()), filepath.Join(dir, aofDir, f.Name()))
		}
	})
	serve(t, ctx, s, Options{AOFDir: aofDir})
	if got := digest(t, ctx, s); got != want {
		t.Fatalf("DEBUG DIGEST %q, the source's %q", got, want)
	}
}

// TestServer_Primary starts an empty writable primary; SAVE writes Dir/dump.rdb,
// which Stop leaves and Close removes.
func TestServer_Primary(t *testing.T) {
	ctx := t.Context()
	s := newServer(t, nil)
	serve(t, ctx, s, Options{Primary: true})
	c := s.Client(0)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	pid := s.Pid()
	s.Stop()
	if !s.Exited() {
		t.Fatal("not exited after Stop")
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "dump.rdb")); err != nil {
		t.Fatalf("dump.rdb after Stop: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	gone(t, pid, s.Dir)
}

func TestServer_Canceled(t *testing.T) {
	bin := redistest.Binary(t)

	t.Run("while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		s := newServer(t, nil)
		if err := s.Start(ctx, Options{Bin: bin}); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := s.Wait(ctx, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait after cancel: %v", err)
		}
		pid := s.Pid()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		gone(t, pid, s.Dir)
	})

	t.Run("while starting", func(t *testing.T) {
		// Start waits 50ms for an exit at start; the deadline ends it first.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		s := newServer(t, nil)
		if err := s.Start(ctx, Options{Bin: bin}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Start: %v", err)
		}
		pid := s.Pid()
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists after a canceled Start (kill -0: %v)", pid, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		gone(t, pid, s.Dir)
	})

	t.Run("before starting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		s := newServer(t, nil)
		if err := s.Start(ctx, Options{Bin: bin}); !errors.Is(err, context.Canceled) || s.Pid() != 0 {
			t.Fatalf("Start: %v, pid %d", err, s.Pid())
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(s.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("dir left: %v", err)
		}
	})
}

// TestServer_Exited: a server that cannot load its file exits; the error
// wraps ErrExited and carries the log.
func TestServer_Exited(t *testing.T) {
	ctx := t.Context()
	s := newServer(t, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "dump.rdb"), []byte("REDIS0010 this is no RDB file"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	err := s.Start(ctx, Options{Bin: redistest.Binary(t)})
	if err == nil {
		err = s.Wait(ctx, nil)
	}
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "|") {
		t.Fatalf("err %v, want ErrExited with the log", err)
	}
	if !s.Exited() || s.LogTail(3) == "(no log)" {
		t.Fatalf("exited %v, log %q", s.Exited(), s.LogTail(3))
	}
	pid := s.Pid()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	gone(t, pid, s.Dir)
}
