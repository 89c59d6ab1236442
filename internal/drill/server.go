package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/pitr"
)

// scratch is a redis-server the drill started and owns: a child in its own
// process group, listening on loopback only, in the drill's temp dir.
type scratch struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process was waited for
	port int
	dir  string
	log  string
}

// serverVersion runs `redis-server --version` and returns "7.0.15".
func serverVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("run %s --version: %w", bin, err)
	}
	m := regexp.MustCompile(`v=([0-9][0-9.]*)`).FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s --version printed %q, not a redis-server version", bin, bytes.TrimSpace(out))
	}
	return string(m[1]), nil
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

// startScratch starts bin in dir (which holds dump.rdb) on a free loopback
// port. The server is a replica of an unreachable loopback address
// (127.0.0.1:1, where nothing can listen without privileges): a replica
// loads keys that are already expired and never expires keys itself, so the
// loaded data is exactly the snapshot's, and DEBUG DIGEST is comparable with
// the manifest. It never connects anywhere else. The caller must call stop.
func startScratch(bin, dir string, databases int) (*scratch, error) {
	return startScratchWith(bin, dir, scratchConfig{databases: databases})
}

// scratchConfig says how a scratch server loads and runs.
type scratchConfig struct {
	databases int
	// aof loads the multi-part AOF DIR/appendonlydir (--appendonly yes)
	// instead of DIR/dump.rdb. A replica keeps expired keys while loading
	// an AOF too (redis 7.0: nothing expires while loading, and a replica
	// never expires keys afterwards).
	aof bool
	// primary runs a writable primary (the target of a replay) instead of
	// a replica of 127.0.0.1:1.
	primary bool
}

// startScratchWith starts bin in dir as cfg says; see startScratch.
func startScratchWith(bin, dir string, cfg scratchConfig) (*scratch, error) {
	databases := cfg.databases
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &scratch{port: port, dir: dir, log: filepath.Join(dir, "redis.log")}
		args := []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--protected-mode", "yes",
			"--dir", dir,
			"--dbfilename", "dump.rdb",
			"--save", "",
			"--enable-debug-command", "yes",
			"--daemonize", "no",
			"--logfile", s.log,
			"--databases", strconv.Itoa(max(16, databases)),
		}
		if cfg.aof {
			args = append(args, "--appendonly", "yes", "--appenddirname", pitr.AOFDirName,
				"--appendfilename", "appendonly.aof", "--aof-load-truncated", "no")
		} else {
			args = append(args, "--appendonly", "no")
		}
		if !cfg.primary {
			args = append(args, "--replicaof", "127.0.0.1", "1", "--replica-read-only", "yes")
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.SysProcAttr = procAttr()
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", bin, err)
		}
		s.cmd = cmd
		s.done = make(chan struct{})
		go func() { _ = cmd.Wait(); close(s.done) }()
		// A port taken between freePort and the bind makes the server exit
		// at once; try another.
		select {
		case <-s.done:
			lastErr = fmt.Errorf("redis-server exited at start: %s", s.logTail(5))
			if strings.Contains(s.logTail(5), "Address already in use") {
				continue
			}
			return nil, lastErr
		case <-time.After(50 * time.Millisecond):
		}
		return s, nil
	}
	return nil, lastErr
}

func (s *scratch) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// exited reports whether the process has ended.
func (s *scratch) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop kills the server's process group and waits for the process; it is
// safe to call more than once.
func (s *scratch) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	if !s.exited() {
		killGroup(s.cmd.Process.Pid)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		// SIGKILL cannot be ignored; this only happens if the process is
		// stuck in the kernel. Do not hang the caller forever.
	}
}

// pid is the server's process id.
func (s *scratch) pid() int { return s.cmd.Process.Pid }

// logTail returns the last n lines of the server's log, one line.
func (s *scratch) logTail(n int) string {
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

// client returns a connection pool to the server. Retries are off: a
// LOADING reply must reach the poller, not be retried away.
func (s *scratch) client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  s.addr(),
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

// waitServing polls until the server answers PING and reports loading:0,
// until it exits (its log tail is the error), or until ctx ends.
// progress, when set, receives the bytes loaded so far.
func (s *scratch) waitServing(ctx context.Context, progress func(loaded int64)) error {
	c := s.client(0)
	defer c.Close()
	delay := 5 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return &LoadError{Detail: s.logTail(8)}
		case <-t.C:
		}
		if ok, err := s.serving(ctx, c, progress); ok {
			return nil
		} else if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		delay = min(delay*2, 100*time.Millisecond)
		t.Reset(delay)
	}
}

func (s *scratch) serving(ctx context.Context, c *redis.Client, progress func(int64)) (bool, error) {
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

// LoadError means the scratch server did not load the restored file.
type LoadError struct{ Detail string }

func (e *LoadError) Error() string {
	return "scratch redis-server exited while loading the restored RDB; its log: " + e.Detail
}

// VerificationFailed marks a failed load as a failed drill (exit 3).
func (e *LoadError) VerificationFailed() bool { return true }

// errNoServer is wrapped when no redis-server binary can be found.
var errNoServer = errors.New("redis-server not found")

// findServer resolves the redis-server binary: path when given, else PATH.
func findServer(path string) (string, error) {
	if path == "" {
		path = "redis-server"
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("%w (%s): install redis-server or give --redis-server PATH", errNoServer, path)
	}
	return p, nil
}
