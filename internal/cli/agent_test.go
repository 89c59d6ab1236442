package cli

import (
	"bytes"
	"context"
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
	"redback/internal/storage/file"
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
	b, err := file.New(repo)
	if err != nil {
		t.Fatal(err)
	}
	snaps, _, err := catalog.ListSnapshots(t.Context(), b)
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
