package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"redback/internal/redistest"
)

// TestMain lets a test run redback as a separate process (which it can
// kill -9 or SIGSTOP): the test binary re-executed with
// REDBACK_TEST_AS_REDBACK=1 is `redback` with the given arguments.
func TestMain(m *testing.M) {
	if os.Getenv("REDBACK_TEST_AS_REDBACK") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Run(ctx, os.Args[1:], Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// redbackProcess is redback running as a child process.
type redbackProcess struct {
	cmd  *exec.Cmd
	out  *pitrShipLog
	done chan error
}

func startRedback(t *testing.T, args ...string) *redbackProcess {
	t.Helper()
	p := &redbackProcess{cmd: exec.Command(os.Args[0], args...), out: &pitrShipLog{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), "REDBACK_TEST_AS_REDBACK=1")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait returns the exit code, or -1 when the process did not end in d.
func (p *redbackProcess) wait(d time.Duration) int {
	select {
	case <-p.done:
		p.done <- nil // for the cleanup
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return -1
	}
}

// leaseOrExit waits (at most d) until the agent logs that it took its
// lease, and then returns -1, or until it ends, and returns its exit code
// (-1 also when neither happened in d).
func (p *redbackProcess) leaseOrExit(d time.Duration) int {
	for end := time.Now().Add(d); time.Now().Before(end); {
		if code := p.wait(50 * time.Millisecond); code != -1 {
			return code
		}
		if strings.Contains(p.out.String(), "lease taken") {
			return -1
		}
	}
	return -1
}

// durableWithin polls until the newest offset of src is durable in repo
// (source name), for at most d; it reports whether it became so.
func durableWithin(t *testing.T, src *redistest.Server, repo, name string, d time.Duration) bool {
	t.Helper()
	r := &shipRun{t: t, src: src, repo: repo}
	first := map[string]int64{} // as in waitDurable: later idle traffic waits for a heartbeat
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		replid, off := r.masterInfo()
		if o, ok := first[replid]; ok {
			off = o
		} else {
			first[replid] = off
		}
		code, out, _ := runCLI(t, "list", "--repo", repo, "--name", name, "--json")
		if code != ExitOK {
			continue
		}
		l := listRepoJSON(t, out)
		for _, w := range l.Generations {
			if w.ReplID == replid && w.Problem == "" && w.ToOffset >= off {
				return true
			}
		}
	}
	return false
}

func agentConfig(t *testing.T, dir, name string, src *redistest.Server, repo, extra string) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("agent-%d.yaml", redistest.FreePort(t)))
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
grace_period: 5s
%ssources:
  - name: %s
    source: %s
    repo: %s
    snapshot: {method: sync, every: 1h}
    ship: {enabled: true, interval: 200ms}
    drill: {schedule: "0 3 1 * *", rto_objective: 1m}
`, redistest.FreePort(t), extra, name, src.URL(), repo)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAgent_KillNineRestart: kill -9 of the agent while it ships, then an
// immediate restart: the new agent takes the dead agent's lease at once
// (same host, process gone) and says so, ships again within 15 s, and a
// write made right after the kill is restorable. No log gap is silent.
func TestAgent_KillNineRestart(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	redistest.Populate(t, src, 50)
	dir := t.TempDir()
	repo := "file://" + filepath.Join(dir, "repo")
	cfg := agentConfig(t, dir, "cache-a", src, repo, "")

	first := startRedback(t, "agent", "--config", cfg)
	if !durableWithin(t, src, repo, "cache-a", 30*time.Second) {
		t.Fatalf("the first agent did not ship in 30 s:\n%s", first.out.String())
	}
	for i := 0; i < 50; i++ {
		src.Client().Set(ctx, fmt.Sprintf("before:%d", i), i, 0)
	}
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.wait(10 * time.Second)
	if err := src.Client().Set(ctx, "after_kill", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}

	restarted := time.Now()
	second := startRedback(t, "agent", "--config", cfg)
	if !durableWithin(t, src, repo, "cache-a", 15*time.Second) {
		t.Fatalf("the restarted agent did not ship within 15 s:\n%s", second.out.String())
	}
	t.Logf("restarted agent durable after %s", time.Since(restarted).Round(10*time.Millisecond))
	if !strings.Contains(second.out.String(), "took over the lease of a writer that is gone") {
		t.Errorf("no log line about the taken-over lease:\n%s", second.out.String())
	}
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := second.wait(30 * time.Second); code != 0 {
		t.Fatalf("restarted agent: exit %d\n%s", code, second.out.String())
	}

	for _, w := range listRepo(t, repo).Generations {
		for _, g := range w.Gaps {
			t.Errorf("generation %s has a silent gap or overlap %+v", w.Generation, g)
		}
	}
	dst := redistest.Start(t)
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", dst.URL()); code != ExitOK {
		t.Fatalf("restore --at latest: exit %d\n%s%s", code, out, errs)
	}
	if got, want := dst.Digest(ctx), src.Digest(ctx); got != want {
		t.Fatalf("restored digest %s, want the source's %s (the write after the kill is lost?)", got, want)
	}
}

// TestAgent_PausedWriterFenced: an agent paused with SIGSTOP keeps its
// lease only until it expires; another agent then takes it over and ships.
// When the paused agent resumes, its lease's local deadline has passed: it
// stops (exit 1, lease lost) without writing, and the repository holds one
// unbroken, verified log that restores to the source's digest.
func TestAgent_PausedWriterFenced(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	redistest.Populate(t, src, 50)
	dir := t.TempDir()
	repo := "file://" + filepath.Join(dir, "repo")

	paused := startRedback(t, "agent", "--config", agentConfig(t, dir, "cache-a", src, repo, "lease_ttl: 3s\n"))
	if !durableWithin(t, src, repo, "cache-a", 30*time.Second) {
		t.Fatalf("the first agent did not ship in 30 s:\n%s", paused.out.String())
	}
	if err := paused.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Writes the paused agent holds in its spool (received, not stored)
	// or never sees.
	for i := 0; i < 50; i++ {
		src.Client().Set(ctx, fmt.Sprintf("paused:%d", i), i, 0)
	}

	// The second agent is refused while the lease lives (the paused
	// process exists), then takes it over.
	cfg2 := agentConfig(t, dir, "cache-a", src, repo, "lease_ttl: 3s\n")
	var second *redbackProcess
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; second == nil; i++ {
		if i == 300 || time.Now().After(deadline) {
			t.Fatalf("the second agent never got the lease (%d tries)", i)
		}
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		p := startRedback(t, "agent", "--config", cfg2)
		switch code := p.leaseOrExit(60 * time.Second); code {
		case -1:
			second = p // running: it holds the lease
		case 1:
			if !strings.Contains(p.out.String(), "is leased by") {
				t.Fatalf("second agent: exit 1 without naming the holder:\n%s", p.out.String())
			}
		default:
			t.Fatalf("second agent: exit %d\n%s", code, p.out.String())
		}
	}
	if !durableWithin(t, src, repo, "cache-a", 30*time.Second) {
		t.Fatalf("the second agent did not ship in 30 s:\n%s", second.out.String())
	}

	if err := paused.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := paused.wait(30 * time.Second); code != 1 || !strings.Contains(paused.out.String(), "lease lost") {
		t.Fatalf("resumed agent: exit %d, want 1 with 'lease lost'\n%s", code, paused.out.String())
	}
	if err := src.Client().Set(ctx, "after_resume", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if !durableWithin(t, src, repo, "cache-a", 30*time.Second) {
		t.Fatalf("the second agent stopped shipping:\n%s", second.out.String())
	}
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := second.wait(30 * time.Second); code != 0 {
		t.Fatalf("second agent: exit %d\n%s", code, second.out.String())
	}

	for _, w := range listRepo(t, repo).Generations {
		for _, g := range w.Gaps {
			t.Errorf("generation %s: two writers left a gap or overlap %+v", w.Generation, g)
		}
	}
	if code, out, errs := runCLI(t, "verify", "--repo", repo); code != ExitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	dst := redistest.Start(t)
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", dst.URL()); code != ExitOK {
		t.Fatalf("restore --at latest: exit %d\n%s%s", code, out, errs)
	}
	if got, want := dst.Digest(ctx), src.Digest(ctx); got != want {
		t.Fatalf("restored digest %s, want the source's %s", got, want)
	}
}

func listRepoJSON(t *testing.T, out string) listOutput {
	t.Helper()
	var l listOutput
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	return l
}
