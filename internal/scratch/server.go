package scratch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrExited is wrapped when the server exited before it served: at start
// (Start) or while loading (Wait). The error carries the end of its log;
// LogTail reads more.
var ErrExited = errors.New("scratch redis-server exited")

// Options say how a scratch server loads and runs.
type Options struct {
	// Bin is the redis-server binary: a path, or a name looked up on PATH.
	Bin string
	// Databases is the number of databases (at least 16 are configured).
	Databases int
	// AOFDir, when set, names the multi-part AOF dir in Dir to load
	// (--appendonly yes --appenddirname AOFDir) instead of Dir/dump.rdb. A
	// replica keeps expired keys while loading an AOF too (redis 7.0:
	// nothing expires while loading, and a replica never expires keys
	// afterwards).
	AOFDir string
	// Primary runs a writable primary (the target of a replay) instead of
	// a replica of 127.0.0.1:1.
	Primary bool
}

// Server is a throw-away redis-server and its own temp dir. Make it with
// New, fill Dir, Start it, and Close it in every case.
type Server struct {
	// Dir is the server's own temp dir and working dir (--dir): dump.rdb,
	// the AOF dir and redis.log live here. Close removes it.
	Dir string

	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process was waited for
	port int
}

// New makes the server's temp dir in parent (os.TempDir() when "") with
// os.MkdirTemp's pattern. Nothing runs until Start; Close removes the dir.
func New(parent, pattern string) (*Server, error) {
	dir, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return nil, err
	}
	return &Server{Dir: dir, log: filepath.Join(dir, "redis.log")}, nil
}

// Start runs o.Bin in Dir on a free loopback port, as o says. It returns
// once the process runs; Wait tells when it serves. A port taken by
// someone else between the choice and the bind is retried with another.
// When ctx ends during the start the process is killed and ctx.Err()
// returned. Start may be called once.
func (s *Server) Start(ctx context.Context, o Options) error {
	if s.cmd != nil {
		return errors.New("scratch redis-server: already started")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		_ = os.Remove(s.log) // the log of an attempt that lost its port
		cmd := exec.Command(o.Bin, s.args(port, o)...)
		cmd.Dir = s.Dir
		cmd.SysProcAttr = procAttr()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", o.Bin, err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		s.cmd, s.done, s.port = cmd, done, port
		// A port taken between freePort and the bind makes the server
		// exit at once; try another.
		select {
		case <-done:
			tail := s.LogTail(6)
			lastErr = fmt.Errorf("%w at start: %s", ErrExited, tail)
			if strings.Contains(tail, "Address already in use") {
				continue
			}
			return lastErr
		case <-ctx.Done():
			s.Stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		return nil
	}
	return lastErr
}

func (s *Server) args(port int, o Options) []string {
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--protected-mode", "yes",
		"--dir", s.Dir,
		"--dbfilename", "dump.rdb",
		"--save", "",
		"--enable-debug-command", "yes",
		"--daemonize", "no",
		"--logfile", s.log,
		"--databases", strconv.Itoa(max(16, o.Databases)),
	}
	if o.AOFDir != "" {
		args = append(args, "--appendonly", "yes", "--appenddirname", o.AOFDir,
			"--appendfilename", "appendonly.aof", "--aof-load-truncated", "no")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if !o.Primary {
		args = append(args, "--replicaof", "127.0.0.1", "1", "--replica-read-only", "yes")
	}
	return args
}

// freePort returns a loopback port nobody listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr is "127.0.0.1:PORT".
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Pid is the server's process id, 0 before Start.
func (s *Server) Pid() int {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Exited reports whether the started process has ended.
func (s *Server) Exited() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Stop kills the server's process group and waits for the process; the
// files in Dir stay (a dump.rdb SAVE wrote, say). It is safe to call more
// than once, before Start and on a nil Server.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	if !s.Exited() {
		killGroup(s.cmd.Process.Pid)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		// SIGKILL cannot be ignored; this only happens if the process is
		// stuck in the kernel. Do not hang the caller forever.
	}
}

// Close stops the server and removes Dir. It is safe to call more than
// once and on a nil Server.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	s.Stop()
	return os.RemoveAll(s.Dir)
}

// LogTail returns the last n lines of the server's log as one line.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Client returns a connection pool to db of the server; the caller closes
// it. Retries are off (a LOADING reply must reach the caller, not be
// retried away) and reads have no timeout (SAVE, DEBUG DIGEST).
func (s *Server) Client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  s.Addr(),
		DB:                    db,
		Protocol:              2,
		DisableIdentity:       true,
		MaxRetries:            -1,
		DialTimeout:           2 * time.Second,
		ReadTimeout:           -1,
		WriteTimeout:          time.Minute,
		ContextTimeoutEnabled: true,
		PoolSize:              2,
	})
}

// Wait polls until the server has loaded its data (INFO persistence says
// loading:0) and answers PING. It returns an error wrapping ErrExited with
// the end of the log when the server exits first, ctx.Err() when ctx ends
// first, and the reply when the server answers an error other than
// LOADING. progress, when set, receives the bytes loaded so far.
func (s *Server) Wait(ctx context.Context, progress func(loaded int64)) error {
	c := s.Client(0)
	defer c.Close()
	delay := 5 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return fmt.Errorf("%w while loading: %s", ErrExited, s.LogTail(8))
		case <-t.C:
		}
		ok, err := s.serving(ctx, c, progress)
		switch {
		case ok:
			return nil
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case isReply(err) && !strings.HasPrefix(err.Error(), "LOADING"):
			return fmt.Errorf("scratch redis-server: %w", err)
		}
		delay = min(delay*2, 100*time.Millisecond)
		t.Reset(delay)
	}
}

func (s *Server) serving(ctx context.Context, c *redis.Client, progress func(int64)) (bool, error) {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := c.Info(pctx, "persistence").Result()
	if err != nil {
		return false, err
	}
	loading := true
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "loading:"); ok {
			loading = v != "0"
		}
		if v, ok := strings.CutPrefix(line, "loading_loaded_bytes:"); ok && progress != nil {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				progress(n)
			}
		}
	}
	if loading {
		return false, nil
	}
	if err := c.Ping(pctx).Err(); err != nil {
		return false, err
	}
	return true, nil
}

// isReply reports whether err is an error reply of the server.
func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}
