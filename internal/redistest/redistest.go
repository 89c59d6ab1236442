// Package redistest starts real redis-server processes for tests: each on a
// free loopback TCP port, in its own temp dir, with the DEBUG command enabled,
// stopped by t.Cleanup.
//
// When the binary is missing the test is skipped, unless
// REDBACK_TEST_REQUIRE_REDIS=1 (set by CI), where it fails instead.
package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server owned by a test.
type Server struct {
	t    testing.TB
	Port int
	Dir  string // its working dir (dump.rdb, appendonlydir live here)
	Bin  Bin    // the server build it runs
	args []string

	tls  *tls.Config // set by StartTLS: the server speaks only TLS
	conf string      // config file given first (StartWithConfig)

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	client *redis.Client
}

// Binary returns the path of redis-server (or $REDBACK_REDIS_SERVER), or
// skips/fails the test when it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	return binary(t, "REDBACK_REDIS_SERVER", "redis-server")
}

// Tool returns the path of a Redis tool such as redis-check-aof or redis-cli,
// skipping or failing like Binary when it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	return binary(t, "", name)
}

func binary(t testing.TB, envName, name string) string {
	t.Helper()
	if envName != "" {
		if p := os.Getenv(envName); p != "" {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("REDBACK_TEST_REQUIRE_REDIS") == "1" {
			t.Fatalf("%s not found on PATH and REDBACK_TEST_REQUIRE_REDIS=1: install redis-server and redis-tools", name)
		}
		t.Skipf("%s not found on PATH (install redis-server redis-tools)", name)
	}
	return p
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs redis-server with an empty "--save", "--appendonly no",
// "--enable-debug-command yes", "--repl-diskless-sync-delay 0" plus extra (name value pairs as on the
// command line, e.g. "--repl-diskless-sync-delay", "0"), waits until it
// answers PING, and stops it when the test ends.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, Dir: t.TempDir()}
	return s.start(extra)
}

// StartBin is Start with a given server build (one of Servers, say).
func StartBin(t testing.TB, b Bin, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, Dir: t.TempDir(), Bin: b}
	return s.start(extra)
}

// StartInDir is Start with a given working dir (for example one a restore
// wrote a dump.rdb or an appendonlydir into).
func StartInDir(t testing.TB, dir string, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, Dir: dir}
	return s.start(extra)
}

// StartWithConfig is Start with a config file holding text (directives
// that only a file takes, such as rename-command), written into the
// server's dir and given first on its command line.
func StartWithConfig(t testing.TB, text string, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, Dir: t.TempDir()}
	s.conf = filepath.Join(s.Dir, "redis.conf")
	if err := os.WriteFile(s.conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return s.start(extra)
}

func (s *Server) start(extra []string) *Server {
	t := s.t
	t.Helper()
	if s.Bin.Path == "" {
		s.Bin = Default(t)
	}
	if s.Port == 0 {
		s.Port = FreePort(t)
	}
	ports := []string{"--port", strconv.Itoa(s.Port)}
	if s.tls != nil {
		ports = []string{"--port", "0", "--tls-port", strconv.Itoa(s.Port)}
	}
	s.args = append(ports, []string{
		"--bind", "127.0.0.1",
		"--dir", s.Dir,
		"--save", "",
		"--appendonly", "no",
		"--enable-debug-command", "yes",
		"--repl-diskless-sync-delay", "0",
		"--logfile", filepath.Join(s.Dir, "redis.log"),
		"--daemonize", "no",
	}...)
	s.args = append(s.args, extra...)
	if s.conf != "" {
		s.args = append([]string{s.conf}, s.args...)
	}
	if err := s.spawn(s.Bin.Path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) spawn(bin string) error {
	cmd := exec.Command(bin, s.args...)
	cmd.Dir = s.Dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 2000; i++ {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start; log:\n%s", s.Log())
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil && s.tls != nil {
			tc := tls.Client(c, s.tls)
			_ = tc.SetDeadline(time.Now().Add(2 * time.Second))
			if err = tc.Handshake(); err != nil {
				c.Close()
			} else {
				c = tc
			}
		}
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s did not answer PING in time; log:\n%s", s.Addr(), s.Log())
}

// Addr is "127.0.0.1:PORT".
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// URL is "redis://127.0.0.1:PORT".
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Client returns a go-redis client for db 0, closed when the test ends.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = redis.NewClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true, ReadTimeout: 30 * time.Second, TLSConfig: s.tls})
	}
	return s.client
}

// Log returns the server's log file content.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	return string(b)
}

// Digest returns DEBUG DIGEST.
func (s *Server) Digest(ctx context.Context) string {
	s.t.Helper()
	d, err := s.Client().Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		s.t.Fatalf("DEBUG DIGEST: %v", err)
	}
	return d
}

// Kill sends SIGKILL and waits for the process to end (a crash).
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// Stop shuts the server down without saving and waits for it (idempotent).
func (s *Server) Stop() {
	s.mu.Lock()
	if s.client != nil {
		_ = s.client.Close()
		s.client = nil
	}
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops the server (without saving unless the config says so) and
// starts it again on the same port and dir with the same arguments.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.spawn(s.Bin.Path); err != nil {
		s.t.Fatal(err)
	}
}
