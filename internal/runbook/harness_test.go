package runbook

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/redistest"
)

// binDir holds the redback binary built by TestMain; it goes first on PATH.
var binDir string

// blockTimeout bounds one runbook block.
const blockTimeout = 3 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "redback-runbook-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	goBin := "go"
	if root, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goBin = filepath.Join(strings.TrimSpace(string(root)), "bin", "go")
	}
	cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, "redback"), "redback/cmd/redback")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build redback: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	return m.Run()
}

func load(t *testing.T, name string) *Runbook {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "runbooks", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rb, err := Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(rb.Blocks) == 0 || len(rb.Placeholders) == 0 {
		t.Fatalf("%s: %d blocks, %d placeholders", name, len(rb.Blocks), len(rb.Placeholders))
	}
	if err := rb.CheckGuards(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return rb
}

// run executes the blocks of path in order, one bash per block, and
// returns the wall time of the whole procedure. A failing block fails the
// test.
func run(t *testing.T, name string, rb *Runbook, path string, vars map[string]string) time.Duration {
	t.Helper()
	start := time.Now()
	if b, out, err := runBlocks(t, name, rb, path, vars, ""); err != nil {
		t.Fatalf("%s: block at line %d (path %q) failed: %v\n%s\n--- output:\n%s", name, b.Line, path, err, b.Code, out)
	}
	return time.Since(start)
}

// runBlocks executes the blocks of path in order, each as a plain
// `bash -c` (the block's own guard stops it at the first failure, as it
// does for an operator), with binPrefix (when set) first on PATH. It stops
// at the first block that fails and returns it with its output and error.
func runBlocks(t *testing.T, name string, rb *Runbook, path string, vars map[string]string, binPrefix string) (Block, string, error) {
	t.Helper()
	blocks, err := rb.Script(path, vars)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, b := range blocks {
		out, err := bashIn(t, b.Code, false, binPrefix)
		t.Logf("%s:%d (path %q):\n%s\n--- output:\n%s", name, b.Line, path, b.Code, out)
		if err != nil {
			return b, out, err
		}
	}
	return Block{}, "", nil
}

// bash runs code with bash -euo pipefail (the README tour).
func bash(t *testing.T, code string) (string, error) {
	return bashIn(t, code, true, "")
}

func bashIn(t *testing.T, code string, strict bool, binPrefix string) (string, error) {
	ctx, cancel := context.WithTimeout(t.Context(), blockTimeout)
	defer cancel()
	args := []string{"-c", code}
	if strict {
		args = append([]string{"-euo", "pipefail"}, args...)
	}
	cmd := exec.Command("bash", args...)
	path := binDir + string(os.PathListSeparator) + os.Getenv("PATH")
	if binPrefix != "" {
		path = binPrefix + string(os.PathListSeparator) + path
	}
	cmd.Env = append(os.Environ(), "PATH="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return "", err
	}
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer stop()
	err := cmd.Wait()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", blockTimeout, err)
	}
	return out.String(), err
}

// report prints the measured RTO of a scenario.
func report(t *testing.T, scenario string, rto time.Duration, keys int64) {
	t.Helper()
	line := fmt.Sprintf("RTO %s: %.2fs (%d keys, whole runbook procedure: diagnosis, restore, start, verification)", scenario, rto.Seconds(), keys)
	t.Log(line)
	fmt.Println(line)
}

// server is a redis-server started from a config file with daemonize yes,
// the way the runbooks start it.
type server struct {
	Port    int
	Dir     string // data dir
	Conf    string
	PidFile string
	LogFile string
}

// newServer writes a config file and registers a cleanup that kills the
// server (whoever started it) by its pid file.
func newServer(t *testing.T, extra ...string) *server {
	t.Helper()
	redistest.Binary(t)
	base := t.TempDir()
	s := &server{Port: redistest.FreePort(t), Dir: filepath.Join(base, "data"), Conf: filepath.Join(base, "etc", "redis.conf"),
		PidFile: filepath.Join(base, "run", "redis.pid"), LogFile: filepath.Join(base, "log", "redis.log")}
	for _, d := range []string{s.Dir, filepath.Dir(s.Conf), filepath.Dir(s.PidFile), filepath.Dir(s.LogFile)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\ndaemonize yes\npidfile %s\nlogfile %s\nenable-debug-command local\nrepl-diskless-sync-delay 0\nsave \"\"\n",
		s.Port, s.Dir, s.PidFile, s.LogFile)
	for i := 0; i+1 < len(extra); i += 2 {
		conf += extra[i] + " " + extra[i+1] + "\n"
	}
	if err := os.WriteFile(s.Conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killPidFile(s.PidFile) })
	return s
}

// killPidFile SIGKILLs the redis-server whose pid the file holds, if it
// still runs.
func killPidFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if !strings.HasPrefix(string(comm), "redis-server") {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for range 200 {
		if !alive(pid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie, which a container's init may
// never reap, does not count).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

func (s *server) start(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(redistest.Binary(t), s.Conf).CombinedOutput(); err != nil {
		t.Fatalf("redis-server %s: %v\n%s", s.Conf, err, out)
	}
	s.waitReady(t)
}

func (s *server) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 3000 && time.Now().Before(deadline); i++ {
		c, err := net.DialTimeout("tcp", s.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			if v, err := s.client(t).Info(t.Context(), "persistence").Result(); err == nil && strings.Contains(v, "loading:0") {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	log, _ := os.ReadFile(s.LogFile)
	t.Fatalf("redis-server on %s did not start; log:\n%s", s.addr(), log)
}

func (s *server) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }
func (s *server) url() string  { return "redis://" + s.addr() }

func (s *server) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr(), DisableIdentity: true, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *server) digest(t *testing.T) string {
	t.Helper()
	d, err := s.client(t).Do(t.Context(), "DEBUG", "DIGEST").Text()
	if err != nil {
		t.Fatalf("DEBUG DIGEST on %s: %v", s.addr(), err)
	}
	return d
}

func (s *server) keys(t *testing.T) int64 {
	t.Helper()
	var n int64
	for db := range 16 {
		c := redis.NewClient(&redis.Options{Addr: s.addr(), DB: db, DisableIdentity: true})
		k, err := c.DBSize(t.Context()).Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	return n
}

// kill9 SIGKILLs the server (a crash: no save, no shutdown).
func (s *server) kill9(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(s.PidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		if !alive(pid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("redis-server %d did not die", pid)
}

// fill writes n keys of every common type in dbs 0 and 2, some with TTLs
// far in the future, pipelined.
func fill(t *testing.T, s *server, prefix string, n int) {
	t.Helper()
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	far := time.Now().Add(240 * time.Hour).UnixMilli()
	for _, db := range []int{0, 2} {
		c := redis.NewClient(&redis.Options{Addr: s.addr(), DB: db, DisableIdentity: true})
		p := c.Pipeline()
		for i := range n / 2 {
			k := fmt.Sprintf("%s:%d:%d", prefix, db, i)
			switch i % 6 {
			case 0:
				p.Set(ctx, k, strings.Repeat("v", 20+rng.IntN(100)), 0)
			case 1:
				p.Do(ctx, "SET", k, i, "PXAT", far+int64(i))
			case 2:
				p.HSet(ctx, k, "a", i, "b", "x", "c", rng.Float64())
			case 3:
				p.RPush(ctx, k, "x", i, "y")
			case 4:
				p.ZAdd(ctx, k, redis.Z{Score: rng.Float64(), Member: "m"}, redis.Z{Score: 2, Member: "n"})
			case 5:
				p.SAdd(ctx, k, i, i+1, "s")
			}
			if p.Len() >= 1000 {
				if _, err := p.Exec(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

// waitReplica waits until a replica (redback ship) is online on s.
func (s *server) waitReplica(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < 6000 && time.Now().Before(deadline); i++ {
		if v, err := s.client(t).Info(t.Context(), "replication").Result(); err == nil && strings.Contains(v, "state=online") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no replica came online on %s", s.addr())
}

// durable waits until every write so far is stored in repo: the newest
// durable point that `redback list` prints reaches the server's
// master_repl_offset. (WAIT with ship --ack durable would be the natural
// check, but it returns before the write is stored today.)
func (s *server) durable(t *testing.T, repo string) {
	t.Helper()
	info, err := s.client(t).Info(t.Context(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`master_repl_offset:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no master_repl_offset in INFO replication:\n%s", info)
	}
	want, _ := strconv.ParseInt(m[1], 10, 64)
	re := regexp.MustCompile(`newest durable point: .*offset (\d+)\)`)
	deadline := time.Now().Add(60 * time.Second)
	var out string
	for i := 0; i < 600 && time.Now().Before(deadline); i++ {
		out = redback(t, "list", "--repo", repo)
		if m := re.FindStringSubmatch(out); m != nil {
			if got, _ := strconv.ParseInt(m[1], 10, 64); got >= want {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the shipped log did not reach offset %d in time; redback list:\n%s", want, out)
}

// redback runs the built binary (staging, not a runbook step).
func redback(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "redback"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redback %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ship runs `redback ship --ack durable` against s until the test ends.
func ship(t *testing.T, s *server, repo string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "redback"), "ship", "--source", s.url(), "--repo", repo, "--ack", "durable", "--interval", "200ms")
	logf, err := os.Create(filepath.Join(t.TempDir(), "ship.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	s.waitReplica(t)
}

// hasCommand reports whether `redback VERB --help` knows flag (or the verb
// when flag is "").
func hasCommand(verb, flag string) bool {
	out, err := exec.Command(filepath.Join(binDir, "redback"), verb, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Usage:\n  redback "+verb) {
		return false
	}
	return flag == "" || strings.Contains(string(out), flag)
}

func need(t *testing.T, verb, flag string) {
	t.Helper()
	if !hasCommand(verb, flag) {
		t.Skipf("this scenario needs `redback %s %s`, which is not in the tree yet", verb, flag)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
