package pitr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/redisurl"
	"redback/internal/restore"
)

// ToRDB writes the restored state as one RDB file at path: it writes the
// AOF directory into a scratch dir next to path, loads it into a scratch
// redis-server (bin, or redis-server from PATH when empty) on a free
// loopback port, runs SAVE, and moves dump.rdb to path (fsynced). The
// scratch server runs as a replica of an unreachable address so it expires
// nothing. The scratch server and dir are removed in every case. An
// existing path is refused unless ro.Force.
func (p *Plan) ToRDB(ctx context.Context, path, bin string, ro restore.Options) (*Result, error) {
	start := time.Now()
	if _, err := os.Stat(path); err == nil && !ro.Force {
		return &Result{}, fmt.Errorf("%s: %w (use --force to replace it)", path, restore.ErrExists)
	}
	if bin == "" {
		b, err := exec.LookPath("redis-server")
		if err != nil {
			return &Result{}, fmt.Errorf("--to-rdb needs redis-server on PATH to turn the log into an RDB: %w", err)
		}
		bin = b
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return &Result{}, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(abs), ".redback-pitr-")
	if err != nil {
		return &Result{}, fmt.Errorf("scratch dir: %w", err)
	}
	defer os.RemoveAll(dir)
	dro := ro
	dro.Force = false
	res, err := p.ToDir(ctx, dir, dro)
	if err != nil {
		return res, err
	}
	defer func() { res.Duration = time.Since(start) }()
	s, err := startScratch(ctx, bin, dir)
	if err != nil {
		return res, err
	}
	defer s.stop()
	c := redis.NewClient(&redis.Options{Addr: s.addr, DisableIdentity: true, Protocol: 2, MaxRetries: -1, ReadTimeout: -1, ContextTimeoutEnabled: true, PoolSize: 1})
	defer c.Close()
	if err := s.waitLoaded(ctx, c); err != nil {
		return res, err
	}
	if err := c.Do(ctx, "SAVE").Err(); err != nil {
		return res, fmt.Errorf("scratch redis-server SAVE: %w", err)
	}
	s.stop()
	src, err := os.Open(filepath.Join(dir, "dump.rdb"))
	if err != nil {
		return res, err
	}
	defer src.Close()
	err = writeAtomic(filepath.Dir(abs), filepath.Base(abs), func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	})
	return res, err
}

type scratchServer struct {
	cmd  *exec.Cmd
	done chan struct{}
	addr string
	log  string
}

func startScratch(ctx context.Context, bin, dir string) (*scratchServer, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		s := &scratchServer{addr: "127.0.0.1:" + strconv.Itoa(port), log: filepath.Join(dir, "redis.log"), done: make(chan struct{})}
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
			"--dir", dir, "--dbfilename", "dump.rdb", "--save", "",
			"--appendonly", "yes", "--appenddirname", AOFDirName, "--appendfilename", "appendonly.aof",
			"--aof-load-truncated", "no",
			"--replicaof", "127.0.0.1", "1", "--daemonize", "no", "--logfile", s.log,
			"--databases", "256")
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", bin, err)
		}
		s.cmd = cmd
		go func() { _ = cmd.Wait(); close(s.done) }()
		select {
		case <-s.done:
			lastErr = fmt.Errorf("scratch redis-server exited at start: %s", s.logTail())
			if strings.Contains(s.logTail(), "Address already in use") {
				continue
			}
			return nil, lastErr
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		return s, nil
	}
	return nil, lastErr
}

// waitLoaded polls PING until the server answers without LOADING.
func (s *scratchServer) waitLoaded(ctx context.Context, c *redis.Client) error {
	delay := 5 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return fmt.Errorf("scratch redis-server could not load the restored AOF: %s", s.logTail())
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		var re redis.Error
		if errors.As(err, &re) && !strings.HasPrefix(err.Error(), "LOADING") {
			return fmt.Errorf("scratch redis-server: %w", err)
		}
		delay = min(delay*2, 100*time.Millisecond)
		t.Reset(delay)
	}
}

func (s *scratchServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
	}
}

func (s *scratchServer) logTail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 6 {
		lines = lines[len(lines)-6:]
	}
	return strings.Join(lines, " | ")
}

// ToRedisExact restores the point into the server at u without replaying
// the log on it: the point is first rebuilt in a scratch redis-server (bin,
// or redis-server from PATH when empty) that loads the AOF directory as a
// replica of an unreachable address, so nothing expires while the log is
// applied, and saved as an RDB; that RDB is then restored with the restore
// package (RESTORE ... ABSTTL, conflict modes, keys already expired now are
// skipped and counted).
//
// Replaying the log straight into a live primary (ToRedis) is wrong for
// keys whose TTL ended between a command and the replay: the primary
// deletes such a key when a later command touches it (APPEND, HSET, ...)
// and the command then creates a new key without its TTL, or a PEXPIREAT
// that refreshed it finds nothing. ToRedisExact has no such gap.
func (p *Plan) ToRedisExact(ctx context.Context, u *redisurl.URL, ro restore.Options, bin string) (*Result, error) {
	start := time.Now()
	if err := checkBaseOptions(ro); err != nil {
		return &Result{}, err
	}
	if ro.Conflict == restore.ConflictFail {
		if err := checkEmpty(ctx, u); err != nil {
			return &Result{}, err
		}
	}
	dir, err := os.MkdirTemp("", "redback-pitr-")
	if err != nil {
		return &Result{}, fmt.Errorf("scratch dir: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "point.rdb")
	res, err := p.ToRDB(ctx, path, bin, restore.Options{})
	if err != nil {
		return res, err
	}
	rstart := time.Now()
	br, err := restore.ToRedis(ctx, restore.FileSource(path), u, ro)
	res.Base = br
	res.Replay = time.Since(rstart)
	res.Duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("restore the rebuilt point: %w", err)
	}
	return res, nil
}
