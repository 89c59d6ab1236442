package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/redistest"
)

// TestAgent_CLIRunsSnapshots runs `redback agent` against a real
// redis-server (method bgsave, every 1s) and a file repository until a
// snapshot was taken, a drill of it passed and /healthz is 200, then stops it like SIGTERM does.
func TestAgent_CLIRunsSnapshots(t *testing.T) {
	srv := redistest.Start(t)
	if err := srv.Client().Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	port := redistest.FreePort(t)
	cfgPath := filepath.Join(dir, "redback.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
grace_period: 10s
sources:
  - name: cache-a
    source: %s
    repo: file://%s
    snapshot: {method: bgsave, every: 1s}
    ship: {enabled: false}
    drill: {schedule: "@every 1s", rto_objective: 1m}
`, port, srv.URL(), repo)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"agent", "--config", cfgPath}, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	last := ""
	for ok := false; !ok; {
		select {
		case code := <-done:
			t.Fatalf("agent exited early with %d: %s", code, errb.String())
		case <-deadline.C:
			t.Fatalf("no healthy agent with a snapshot in time; last %s", last)
		case <-tick.C:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		ok = resp.StatusCode == http.StatusOK && tookSnapshot(metricsText(t, port))
	}
	snaps, _, err := catalog.ListSnapshots(t.Context(), sourceView(t, repo, "cache-a"))
	if err != nil || len(snaps) == 0 || snaps[0].Census.Keys != 1 {
		t.Fatalf("snapshots %v %v", snaps, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop")
	}
	if !strings.Contains(errb.String(), `"msg":"snapshot taken"`) {
		t.Errorf("no JSON log of the snapshot:\n%s", errb.String())
	}
}

func metricsText(t *testing.T, port int) []byte {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return body
}

func tookSnapshot(metrics []byte) bool {
	m := string(metrics)
	return strings.Contains(m, `redback_snapshots_total{source="cache-a"}`) && !strings.Contains(m, `redback_snapshots_total{source="cache-a"} 0`) &&
		strings.Contains(m, `redback_drill_last_result{source="cache-a"} 1`)
}

// TestAgent_ShipsAndRestoresToNow runs the agent with shipping on against a
// real redis-server, writes while it runs, waits until the durable offset
// covers every write, stops it, and restores the newest point (--at now)
// into an empty server: DEBUG DIGEST must equal the source's.
func TestAgent_ShipsAndRestoresToNow(t *testing.T) {
	src := redistest.Start(t)
	redistest.Populate(t, src, 50)
	dir := t.TempDir()
	repo := "file://" + filepath.Join(dir, "repo")
	port := redistest.FreePort(t)
	cfgPath := filepath.Join(dir, "redback.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
grace_period: 10s
sources:
  - name: cache-a
    source: %s
    repo: %s
    snapshot: {method: sync, every: 1h}
    ship: {enabled: true, interval: 200ms}
    drill: {schedule: "0 3 1 * *", rto_objective: 1m}
`, port, src.URL(), repo)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"agent", "--config", cfgPath}, Stdio{In: strings.NewReader(""), Out: io.Discard, Err: &errb})
	}()
	c := src.Client()
	waitMetric := func(what string, ok func(string) bool) {
		t.Helper()
		for i := 0; i < 300; i++ {
			select {
			case code := <-done:
				t.Fatalf("agent exited early with %d: %s", code, errb.String())
			case <-time.After(100 * time.Millisecond):
			}
			if ok(string(metricsText(t, port))) {
				return
			}
		}
		t.Fatalf("%s: not reached in 30 s; stderr:\n%s", what, errb.String())
	}
	waitMetric("shipper connected", func(m string) bool { return strings.Contains(m, `redback_ship_connected{source="cache-a"} 1`) })
	for i := 0; i < 500; i++ {
		if err := c.Do(t.Context(), "HSET", fmt.Sprintf("after:%d", i%37), "f", i).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Do(t.Context(), "DEL", "after:3").Err(); err != nil {
		t.Fatal(err)
	}
	// A key whose TTL ends after it was last written: a restore must not
	// bring it back without its TTL (replaying APPEND on an expired key would).
	if err := c.Do(t.Context(), "SET", "short", "v", "PX", "300").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(t.Context(), "APPEND", "short", "x").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if n, err := c.Exists(t.Context(), "short").Result(); err != nil || n != 0 {
		t.Fatalf("short-lived key still there: %d %v", n, err)
	}
	want := src.Digest(t.Context())
	info, err := c.Info(t.Context(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	var master int64
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "master_repl_offset:"); ok {
			fmt.Sscan(v, &master)
		}
	}
	waitMetric("durable offset reaches the primary's", func(m string) bool {
		for _, l := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(l, `redback_ship_durable_offset{source="cache-a"} `); ok {
				var off float64
				fmt.Sscan(v, &off)
				return int64(off) >= master
			}
		}
		return false
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop")
	}
	// The newest durable point, as `redback list` reports it.
	code, out, errs := runCLI(t, "list", "--repo", repo, "--json")
	var l listOutput
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || len(l.Generations) != 1 {
		t.Fatalf("list: exit %d %v\n%s%s", code, err, out, errs)
	}
	w := l.Generations[0]
	if w.ToOffset < master || len(w.Gaps) != 0 {
		t.Fatalf("window %+v does not reach the primary's offset %d", w, master)
	}
	dst := redistest.Start(t)
	at := w.To.Format(time.RFC3339Nano)
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", at, "--to-redis", dst.URL()); code != 0 {
		t.Fatalf("restore --at: exit %d\n%s%s", code, out, errs)
	}
	if got := dst.Digest(t.Context()); got != want {
		t.Fatalf("digest after restore to now %s, source %s", got, want)
	}
}

// TestAgent_CheckConfigRedisServer: redis_server names the scratch server
// of drills and rebuilds; --check-config runs it (--version) and shows
// which server it is, and refuses (exit 2) one that is missing or no Redis
// or Valkey server.
func TestAgent_CheckConfigRedisServer(t *testing.T) {
	srv := redistest.Binary(t)
	dir := t.TempDir()
	write := func(name, rs string) string {
		p := filepath.Join(dir, name)
		cfg := fmt.Sprintf("redis_server: %s\nsources:\n  - name: a\n    source: redis://127.0.0.1:1\n    repo: %s\n", rs, filepath.Join(dir, "repo"))
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	code, out, errs := runCLI(t, "agent", "--config", write("good.yaml", srv), "--check-config")
	if code != ExitOK || !strings.Contains(out, "scratch server (drills, rebuilds): redis ") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = runCLI(t, "agent", "--config", write("missing.yaml", filepath.Join(dir, "no-such-server")), "--check-config")
	if code != ExitUsage || !strings.Contains(errs, "redis_server:") {
		t.Fatalf("missing binary: exit %d\n%s", code, errs)
	}
	code, _, errs = runCLI(t, "agent", "--config", write("notredis.yaml", "true"), "--check-config")
	if code != ExitUsage || !strings.Contains(errs, "not a Redis or Valkey server") {
		t.Fatalf("not a server: exit %d\n%s", code, errs)
	}
}
