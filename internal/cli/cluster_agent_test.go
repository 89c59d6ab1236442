package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"redback/internal/agent"
	"redback/internal/catalog"
	"redback/internal/ops"
	"redback/internal/redistest"
	"redback/internal/repocopy"
	"redback/internal/storage/file"
)

// replOffset is the master_repl_offset a server reports.
func replOffset(t *testing.T, s *redistest.Server) int64 {
	t.Helper()
	info, err := s.Client().Info(t.Context(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "master_repl_offset:"); ok {
			fmt.Sscan(v, &off)
		}
	}
	return off
}

// agentStatus reads the agent's /status (nil while it does not answer).
func agentStatus(port int) *agent.Status {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", port))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st agent.Status
	if json.NewDecoder(resp.Body).Decode(&st) != nil || len(st.Sources) == 0 {
		return nil
	}
	return &st
}

// TestAgent_ShipsCluster runs the agent with a source that is a node of a
// 3-primary cluster with replicas: it takes a backup set (no source of the
// cluster's own name), drills it, and ships every shard (one stream each, per-shard
// /status and metrics); after writes, once every shard's durable offset
// reaches its primary's, the agent stops and `restore --name CLUSTER --at
// latest` into a fresh 2-primary cluster is union-digest-equal to the
// source.
func TestAgent_ShipsCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	redistest.PopulateCluster(t, c, 300)
	c.WaitReplicated()
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	repo := "file://" + repoDir
	port := redistest.FreePort(t)
	cfgPath := filepath.Join(dir, "redback.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
grace_period: 20s
sources:
  - name: cache
    source: %s
    repo: %s
    snapshot: {method: sync, every: 1h}
    ship: {enabled: true, interval: 200ms}
    drill: {schedule: "@every 5s", rto_objective: 1m}
`, port, c.URL(), repo)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"agent", "--config", cfgPath}, Stdio{In: strings.NewReader(""), Out: io.Discard, Err: &errb})
	}()
	wait := func(what string, ok func(*agent.Status) bool) {
		t.Helper()
		waitStatus(t, port, done, &errb, what, ok)
	}
	wait("a set, a drill of it passed and 3 shards shipping", func(st *agent.Status) bool {
		s := st.Sources[0]
		if s.Snapshot.LastID == "" || s.Ship == nil || len(s.Ship.Shards) != 3 || s.Drill == nil || s.Drill.LastID != s.Snapshot.LastID {
			return false
		}
		for _, x := range s.Ship.Shards {
			if !x.Connected || x.Generation == "" {
				return false
			}
		}
		return true
	})
	m := string(metricsText(t, port))
	for _, want := range []string{`redback_ship_shard_connected{shard="cache-shard-00000",source="cache"} 1`, `redback_ship_shard_slots{shard="cache-shard-05461",source="cache"} 5462`,
		`redback_ship_connected{source="cache"} 1`, `redback_snapshots_total{source="cache"} 1`, `redback_drill_last_result{source="cache"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	writeCluster(t, c, "after", 300)
	c.WaitReplicated()
	want := clusterUnion(t, c)
	wait("every shard's durable offset reaches its primary's", shardsDurable(t, c))
	stopAgent(t, cancel, done, &errb)

	b, err := file.New(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := catalog.OpenRepository(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Source("cache"); ok {
		t.Errorf("the agent made a source named after the cluster: %v", r.Names())
	}
	sets, _, err := catalog.ListSets(t.Context(), b, "cache")
	if err != nil || len(sets) != 1 || len(sets[0].Shards) != 3 {
		t.Fatalf("sets %v %v", sets, err)
	}

	dst := redistest.StartCluster(t, 2, 0)
	code, out, errs := runCLI(t, "restore", "--repo", repo, "--name", "cache", "--at", "latest", "--to-redis", dst.URL())
	if code != 0 {
		t.Fatalf("restore --name cache --at latest: exit %d\n%s%s", code, out, errs)
	}
	if got := clusterUnion(t, dst); got != want {
		t.Fatalf("restored union digest %s, source %s\n%s", got, want, out)
	}
}

// startAgent runs `redback agent` with the configuration text in a file of
// dir, in this process; the returned channel gets its exit code.
func startAgent(t *testing.T, ctx context.Context, dir, name, cfg string, errb *syncBuffer) <-chan int {
	t.Helper()
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"agent", "--config", p}, Stdio{In: strings.NewReader(""), Out: io.Discard, Err: errb})
	}()
	return done
}

// waitStatus polls the agent's /status until ok accepts it (120 s at
// most); it fails the test when the agent exits first.
func waitStatus(t *testing.T, port int, done <-chan int, errb fmt.Stringer, what string, ok func(*agent.Status) bool) *agent.Status {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for i := 0; ; i++ {
		select {
		case code := <-done:
			t.Fatalf("agent exited early with %d: %s", code, errb.String())
		case <-time.After(100 * time.Millisecond):
		}
		st := agentStatus(port)
		if st != nil && ok(st) {
			return st
		}
		if i == 1200 || time.Now().After(deadline) {
			js, _ := json.Marshal(st)
			t.Fatalf("%s: not reached in 120 s; status %s\nstderr:\n%s", what, js, errb.String())
		}
	}
}

// shardsDurable accepts a status whose every shard's durable offset
// reached the offset its primary has now.
func shardsDurable(t *testing.T, c *redistest.Cluster) func(*agent.Status) bool {
	offsets := map[string]int64{}
	for _, p := range c.Primaries() {
		offsets[p.Addr()] = replOffset(t, p)
	}
	return func(st *agent.Status) bool {
		for _, x := range st.Sources[0].Ship.Shards {
			if off, ok := offsets[x.Primary]; !ok || x.DurableOffset < off {
				return false
			}
		}
		return true
	}
}

// writeCluster sets prefix:0 … prefix:n-1 in the cluster, then deletes
// prefix:3.
func writeCluster(t *testing.T, c *redistest.Cluster, prefix string, n int) {
	t.Helper()
	cc := c.Client()
	defer cc.Close()
	for i := range n {
		if err := cc.Set(t.Context(), fmt.Sprintf("%s:%d", prefix, i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cc.Del(t.Context(), prefix+":3").Err(); err != nil {
		t.Fatal(err)
	}
}

// stopAgent cancels an agent's context and waits for its exit 0.
func stopAgent(t *testing.T, cancel context.CancelFunc, done <-chan int, errb fmt.Stringer) {
	t.Helper()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("agent did not stop")
	}
}

// waitAgentUp waits until the agent on port answers /status (it took its
// leases and started); it fails the test when the agent exits first.
func waitAgentUp(t *testing.T, what string, port int, done <-chan int, errb *syncBuffer) {
	t.Helper()
	for i := 0; agentStatus(port) == nil; i++ {
		select {
		case code := <-done:
			t.Fatalf("%s exited with %d: %s", what, code, errb.String())
		case <-time.After(100 * time.Millisecond):
		}
		if i == 600 {
			t.Fatalf("%s not answering in 60 s:\n%s", what, errb.String())
		}
	}
}

// TestAgent_ClusterLeasesAtStart: an agent with a cluster source takes
// every shard's lease at its start, before it writes anything (no
// snapshot due, shipping off), so a second agent on the same cluster and
// repository refuses to start (exit 1, naming the shard and the holder),
// like a second agent of a single server; once the first stops, the
// second starts.
func TestAgent_ClusterLeasesAtStart(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	dir := t.TempDir()
	repo := "file://" + filepath.Join(dir, "repo")
	cfg := func(port int) string {
		return fmt.Sprintf(`listen: 127.0.0.1:%d
grace_period: 5s
sources:
  - name: cache
    source: %s
    repo: %s
    snapshot: {method: sync, schedule: "0 0 1 1 *"}
`, port, c.URL(), repo)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	port1 := redistest.FreePort(t)
	var err1 syncBuffer
	done1 := startAgent(t, ctx, dir, "first", cfg(port1), &err1)
	waitAgentUp(t, "first agent", port1, done1, &err1)
	if n := strings.Count(err1.String(), `"msg":"lease taken"`); n != 3 {
		t.Fatalf("first agent took %d leases at start, want 3:\n%s", n, err1.String())
	}

	port2 := redistest.FreePort(t)
	var err2 syncBuffer
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	select {
	case code := <-startAgent(t, ctx2, dir, "second", cfg(port2), &err2):
		out := err2.String()
		if code != 1 || !strings.Contains(out, "source cache: shard cache-shard-00000") || !strings.Contains(out, "is leased by") {
			t.Fatalf("second agent: exit %d, want 1 naming the shard and the holder:\n%s", code, out)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("second agent did not refuse in 60 s:\n%s", err2.String())
	}

	cancel()
	select {
	case code := <-done1:
		if code != 0 {
			t.Fatalf("first agent: exit %d: %s", code, err1.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("first agent did not stop")
	}
	var err3 syncBuffer
	done3 := startAgent(t, ctx2, dir, "third", cfg(port2), &err3)
	waitAgentUp(t, "agent after the first stopped", port2, done3, &err3)
	cancel2()
	select {
	case <-done3:
	case <-time.After(60 * time.Second):
		t.Fatal("agent did not stop")
	}
}

// syncBuffer is a bytes.Buffer safe to read while an agent writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestAgent_ClusterCopyTo: an agent with a cluster source and copy_to
// copies the cluster's sets to the second repository, each set manifest
// written there after its shards' snapshots: `restore --name cache
// --latest` from the copy is union-digest equal to the cluster. A set
// whose shard snapshot is damaged in the repository is not published on
// a fresh target (ops.CopyCluster holds it and reports the damage).
func TestAgent_ClusterCopyTo(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	redistest.PopulateCluster(t, c, 200)
	want := clusterUnion(t, c)
	dir := t.TempDir()
	repoDir, copyDir := filepath.Join(dir, "repo"), filepath.Join(dir, "copy")
	port := redistest.FreePort(t)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
grace_period: 10s
sources:
  - name: cache
    source: %s
    repo: file://%s
    copy_to: [file://%s]
    copy_interval: 1s
    snapshot: {method: sync, every: 1h}
`, port, c.URL(), repoDir, copyDir)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errb syncBuffer
	done := startAgent(t, ctx, dir, "agent", cfg, &errb)
	waitAgentUp(t, "agent", port, done, &errb)
	var copied []*catalog.Set
	for i := 0; len(copied) == 0; i++ {
		if i == 900 {
			t.Fatalf("no set on the copy in 90 s:\n%s", errb.String())
		}
		select {
		case code := <-done:
			t.Fatalf("agent exited with %d: %s", code, errb.String())
		case <-time.After(100 * time.Millisecond):
		}
		if b, err := file.New(copyDir); err == nil {
			copied, _, _ = catalog.ListSets(t.Context(), b, "cache")
		}
	}
	st := agentStatus(port)
	if st == nil || len(st.Sources[0].Copies) != 1 || st.Sources[0].Copies[0].LastError != "" {
		js, _ := json.Marshal(st)
		t.Errorf("status of the copy: %s", js)
	}
	stopAgent(t, cancel, done, &errb)
	if len(copied[0].Shards) != 3 {
		t.Fatalf("copied set has %d shards", len(copied[0].Shards))
	}
	dst := redistest.StartCluster(t, 2, 0)
	code, out, errs := runCLI(t, "restore", "--repo", "file://"+copyDir, "--name", "cache", "--latest", "--to-redis", dst.URL())
	if code != 0 {
		t.Fatalf("restore from the copy: exit %d\n%s%s", code, out, errs)
	}
	if got := clusterUnion(t, dst); got != want {
		t.Fatalf("restored from the copy: union digest %s, cluster %s", got, want)
	}

	// Damage one shard's snapshot data: a fresh copy holds the set back.
	src, err := file.New(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := catalog.OpenRepository(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	sh := copied[0].Shards[1]
	ref, _ := r.Source(sh.Source)
	view := ref.Backend(src)
	key := catalog.SnapshotDataKey(sh.Snapshot, false)
	rc, err := view.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if _, err := view.Put(t.Context(), key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	fresh, err := file.New(filepath.Join(dir, "fresh"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ops.CopyCluster(t.Context(), src, fresh, "cache", slog.New(slog.DiscardHandler))
	var damage *repocopy.DamageError
	if !errors.As(err, &damage) || res == nil || !slices.Contains(res.Held, catalog.SetKey("cache", copied[0].ID)) {
		t.Fatalf("copy of a damaged set: err %v, result %+v", err, res)
	}
	if sets, _, _ := catalog.ListSets(t.Context(), fresh, "cache"); len(sets) != 0 {
		t.Fatalf("the damaged set was published on the fresh copy: %v", sets)
	}
}

// TestAgent_ClusterSnapshotFromLog: a cluster source with snapshot method
// log ships every shard and publishes sets synthesized from the shards'
// logs (a set by sync while a shard has no usable log yet, counted as a
// fallback); after writes, once every shard's log is durable up to its
// primary's offset, the next set is method log, each shard's snapshot is
// method log, and the set's union digest equals the cluster's.
func TestAgent_ClusterSnapshotFromLog(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	redistest.PopulateCluster(t, c, 200)
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	port := redistest.FreePort(t)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
grace_period: 20s
sources:
  - name: cache
    source: %s
    repo: file://%s
    snapshot: {method: log, every: 2s}
    ship: {enabled: true, interval: 200ms}
`, port, c.URL(), repoDir)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errb syncBuffer
	done := startAgent(t, ctx, dir, "agent", cfg, &errb)
	wait := func(what string, ok func(*agent.Status) bool) {
		t.Helper()
		waitStatus(t, port, done, &errb, what, ok)
	}
	wait("3 shards shipping", func(st *agent.Status) bool {
		s := st.Sources[0]
		if s.Ship == nil || len(s.Ship.Shards) != 3 {
			return false
		}
		for _, x := range s.Ship.Shards {
			if !x.Connected || x.Generation == "" {
				return false
			}
		}
		return true
	})
	writeCluster(t, c, "logged", 200)
	want := clusterUnion(t, c)
	wait("every shard's durable offset reaches its primary's", shardsDurable(t, c))
	b, err := file.New(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	durable := time.Now()
	var set *catalog.Set
	wait("a set synthesized from the logs after they were durable", func(st *agent.Status) bool {
		fl := st.Sources[0].FromLog
		if fl == nil || fl.Snapshot == "" {
			return false
		}
		s, err := catalog.ReadSet(t.Context(), b, "cache", fl.Snapshot)
		if err != nil || !s.StartTime.After(durable) {
			return false
		}
		set = s
		return true
	})
	stopAgent(t, cancel, done, &errb)
	if set.Method != catalog.MethodLog || len(set.Shards) != 3 {
		t.Fatalf("set %s: method %q, %d shards", set.ID, set.Method, len(set.Shards))
	}
	r, err := catalog.OpenRepository(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range set.Shards {
		ref, _ := r.Source(sh.Source)
		snap, err := catalog.ReadSnapshot(t.Context(), ref.Backend(b), sh.Snapshot)
		if err != nil || !snap.FromLog() {
			t.Fatalf("shard %s snapshot %s: from log %v, err %v", sh.Source, sh.Snapshot, snap != nil && snap.FromLog(), err)
		}
	}
	if set.Digest != want {
		t.Fatalf("synthesized set %s: union digest %s, cluster %s", set.ID, set.Digest, want)
	}
}
