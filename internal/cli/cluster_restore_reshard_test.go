package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/cluster"
	"redback/internal/redistest"
	"redback/internal/redisurl"
)

// clusterCheck waits (bounded) until redis-cli --cluster check finds the
// cluster consistent: every node agrees on the slots, none open.
func clusterCheck(t *testing.T, cli, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var out []byte
	for i := 0; i < 120 && time.Now().Before(deadline); i++ {
		var err error
		if out, err = exec.Command(cli, "--cluster", "check", addr).CombinedOutput(); err == nil && !strings.Contains(string(out), "[WARNING]") {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("cluster at %s not consistent in time:\n%s", addr, out)
}

// nodeID is CLUSTER MYID of s.
func nodeID(t *testing.T, s *redistest.Server) string {
	t.Helper()
	id, err := s.Client().Do(t.Context(), "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestClusterRestoreDuringReshard restores while slots move in the target
// 3-primary cluster. A backup set is restored while redis-cli --cluster
// reshard moves 2000 slots back and forth between two primaries in the
// background (MOVED for keys sent to a slot's old owner, ASK while a slot
// migrates); a standalone server's snapshot is restored while a slot with
// keys of it is held migrating (every key of that slot answered ASK, so
// written again through the cluster client, deterministically), then the
// slot's move is finished. Each time every key lands: the target's union
// digest equals the source's.
func TestClusterRestoreDuringReshard(t *testing.T) {
	ctx := context.Background()
	cli := redistest.Tool(t, "redis-cli")
	src := redistest.StartCluster(t, 3, 0)
	redistest.PopulateCluster(t, src, 4000)
	want := clusterUnion(t, src)
	repo := "file://" + filepath.Join(t.TempDir(), "repo")
	set := snapshotCluster(t, repo, src.URL())
	tgt := redistest.StartCluster(t, 3, 0)
	ps := tgt.Primaries()
	a, b := nodeID(t, ps[0]), nodeID(t, ps[1])

	// Reshard back and forth until the restore is done (bounded).
	var stop atomic.Bool
	var wg sync.WaitGroup
	var moves atomic.Int32
	var mu sync.Mutex
	var failures []string
	started := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		from, to := a, b
		deadline := time.Now().Add(3 * time.Minute)
		for i := 0; i < 40 && time.Now().Before(deadline) && (i == 0 || !stop.Load()); i++ {
			cmd := exec.Command(cli, "--cluster", "reshard", ps[0].Addr(), "--cluster-from", from, "--cluster-to", to,
				"--cluster-slots", "2000", "--cluster-yes")
			if i == 0 {
				close(started)
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				// A check right after a move may see nodes that do not
				// agree yet: wait a little and go on.
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%v: %s", err, lastLines(string(out), 3)))
				mu.Unlock()
				time.Sleep(300 * time.Millisecond)
				continue
			}
			moves.Add(1)
			from, to = to, from
		}
	}()
	<-started
	// Start restoring once the first slots moved (bounded).
	mine := func() string {
		txt, _ := ps[1].Client().ClusterNodes(ctx).Result()
		for _, l := range strings.Split(txt, "\n") {
			if strings.Contains(l, "myself") {
				return strings.Join(strings.Fields(l)[min(8, len(strings.Fields(l))):], " ")
			}
		}
		return ""
	}
	before := mine()
	for i := 0; i < 3000 && mine() == before && !stop.Load(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	code, out, errs := runCLI(t, "restore", "--repo", repo, "--snapshot", set.ID, "--to-redis", tgt.URL(), "--json")
	stop.Store(true)
	wg.Wait()
	var res struct {
		Restored int64 `json:"keys_restored"`
		Failed   int64 `json:"keys_failed"`
		Resent   int64 `json:"keys_resent"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Failed != 0 {
		t.Fatalf("restore of a set during a reshard: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("set: %d keys restored, %d written again after redirects; %d reshards done, %d refused: %v", res.Restored, res.Resent, moves.Load(), len(failures), failures)
	if moves.Load() == 0 {
		t.Fatalf("no reshard completed: %v", failures)
	}
	clusterCheck(t, cli, ps[0].Addr())
	if got := clusterUnion(t, tgt); got != want {
		t.Fatalf("union digest after a restore during a reshard %s, source %s", got, want)
	}

	// A standalone snapshot while a slot with keys migrates.
	one := redistest.Start(t)
	oc := one.Client()
	for i := range 300 {
		if err := oc.Set(ctx, fmt.Sprintf("{s}:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := oc.Set(ctx, fmt.Sprintf("plain:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	wantOne := one.Digest(ctx)
	repo2 := "file://" + filepath.Join(t.TempDir(), "repo2")
	if code, out, errs := runCLI(t, "snapshot", "--source", one.URL(), "--repo", repo2); code != 0 {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
	}
	for _, p := range tgt.Primaries() {
		if err := p.Client().FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	slot, err := tgt.Client().ClusterKeySlot(ctx, "{s}").Result()
	if err != nil {
		t.Fatal(err)
	}
	var owner, dst *redistest.Server
	u, err := redisurl.Parse(tgt.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	topo, err := cluster.Discover(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tgt.Primaries() {
		if i := topo.SlotMap()[slot]; i >= 0 && topo.Shards[i].Primary.Addr == p.Addr() {
			owner = p
		}
	}
	for _, p := range tgt.Primaries() {
		if p != owner {
			dst = p
			break
		}
	}
	if owner == nil || dst == nil {
		t.Fatalf("slot %d: no owner among %v", slot, tgt.Primaries())
	}
	do := func(s *redistest.Server, args ...any) {
		t.Helper()
		if err := s.Client().Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v on %s: %v", args, s.Addr(), err)
		}
	}
	do(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", nodeID(t, owner))
	do(owner, "CLUSTER", "SETSLOT", slot, "MIGRATING", nodeID(t, dst))
	code, out, errs = runCLI(t, "restore", "--repo", repo2, "--to-redis", tgt.URL(), "--json")
	var r2 struct {
		Restored int64 `json:"keys_restored"`
		Failed   int64 `json:"keys_failed"`
		Resent   int64 `json:"keys_resent"`
		Targets  []any `json:"targets"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &r2) != nil || r2.Failed != 0 || r2.Restored != 600 || r2.Resent < 300 || len(r2.Targets) != 3 {
		t.Fatalf("restore of a snapshot while slot %d migrates: exit %d (want 600 keys, 300+ written again after ASK)\n%s%s", slot, code, out, errs)
	}
	// Finish the move: the keys written through ASK are on dst already.
	for _, p := range []*redistest.Server{dst, owner} {
		do(p, "CLUSTER", "SETSLOT", slot, "NODE", nodeID(t, dst))
	}
	for _, p := range tgt.Primaries() {
		if p != dst && p != owner {
			do(p, "CLUSTER", "SETSLOT", slot, "NODE", nodeID(t, dst))
		}
	}
	clusterCheck(t, cli, ps[0].Addr())
	if got := clusterUnion(t, tgt); got != wantOne {
		t.Fatalf("union digest after a restore into a migrating slot %s, source %s", got, wantOne)
	}

	// A snapshot with keys in two dbs: refused (a cluster has db 0 only)
	// before any write; one db moved to db 0 restores.
	for _, p := range tgt.Primaries() {
		if err := p.Client().FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	db2 := redis.NewClient(&redis.Options{Addr: one.Addr(), DB: 2, DisableIdentity: true})
	defer db2.Close()
	for i := range 50 {
		if err := db2.Set(ctx, fmt.Sprintf("two:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errs := runCLI(t, "snapshot", "--source", one.URL(), "--repo", repo2); code != 0 {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "restore", "--repo", repo2, "--to-redis", tgt.URL())
	if code != 1 || !strings.Contains(errs, "db 0 only") || tgt.Keys(ctx) != 0 {
		t.Fatalf("restore of a 2-db snapshot into a cluster: exit %d, %d keys written\n%s%s", code, tgt.Keys(ctx), out, errs)
	}
	code, out, errs = runCLI(t, "restore", "--repo", repo2, "--to-redis", tgt.URL(), "--db", "2", "--map-db", "2:0")
	if code != 0 || tgt.Keys(ctx) != 50 {
		t.Fatalf("restore of db 2 into a cluster's db 0: exit %d, %d keys\n%s%s", code, tgt.Keys(ctx), out, errs)
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], " | ")
}
