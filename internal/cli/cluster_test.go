package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/digest"
	"redback/internal/redistest"
)

// clusterUnion is the union digest of the cluster's primaries.
func clusterUnion(t *testing.T, c *redistest.Cluster) string {
	t.Helper()
	u, err := digest.Union(c.Digests(context.Background())...)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// snapshotCluster runs redback snapshot at the cluster's first node and
// returns the set it published.
func snapshotCluster(t *testing.T, repo, seed string, extra ...string) *catalog.Set {
	t.Helper()
	args := append([]string{"snapshot", "--source", seed, "--repo", repo, "--name", "cache", "--json"}, extra...)
	code, out, errs := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("snapshot of the cluster: exit %d\n%s%s", code, out, errs)
	}
	var set catalog.Set
	if err := json.Unmarshal([]byte(out), &set); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return &set
}

// TestClusterSnapshot takes a backup set of a 3-primary cluster with a
// replica per primary (read from the replicas) and without replicas: one
// source per shard, a set whose union digest equals the union of the
// primaries' DEBUG DIGEST.
func TestClusterSnapshot(t *testing.T) {
	for _, replicas := range []int{0, 1} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			c := redistest.StartCluster(t, 3, replicas)
			keys := redistest.PopulateCluster(t, c, 2000)
			c.WaitReplicated()
			repo := "file://" + filepath.Join(t.TempDir(), "repo")
			want := clusterUnion(t, c)
			set := snapshotCluster(t, repo, c.URL())
			if len(set.Shards) != 3 || set.Digest != want || set.Keys != int64(keys) {
				t.Fatalf("set: %d shards, %d keys (want %d), digest %s (want %s)", len(set.Shards), set.Keys, keys, set.Digest, want)
			}
			for _, sh := range set.Shards {
				wantRole := "primary"
				if replicas > 0 {
					wantRole = "replica"
				}
				if sh.Role != wantRole || !strings.HasPrefix(sh.Source, "cache-shard-") || len(sh.Slots) == 0 {
					t.Errorf("shard %+v", sh)
				}
			}
			if replicas > 0 {
				testRestoreSet(t, c, repo, set)
			}
			// list and verify show the set.
			code, out, errs := runCLI(t, "list", "--repo", repo)
			if code != 0 || !strings.Contains(out, set.ID) || !strings.Contains(out, "backup sets") {
				t.Fatalf("list: exit %d\n%s%s", code, out, errs)
			}
			code, out, errs = runCLI(t, "verify", "--repo", repo)
			if code != 0 || !strings.Contains(out, "ok        set "+set.ID) {
				t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
			}
			// --single-node backs up one node, as before.
			code, out, errs = runCLI(t, "snapshot", "--source", c.Primaries()[0].URL(), "--repo", repo, "--name", "one", "--single-node")
			if code != 0 || !strings.Contains(out, "snapshot ") {
				t.Fatalf("--single-node: exit %d\n%s%s", code, out, errs)
			}
			// A set whose manifest does not match its shards is damage (exit 3).
			path := filepath.Join(strings.TrimPrefix(repo, "file://"), catalog.SetKey(set.Cluster, set.ID))
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(strings.Replace(string(data), set.Digest, strings.Repeat("1", 40), 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs = runCLI(t, "verify", "--repo", repo)
			if code != ExitVerify || !strings.Contains(out, "union of the shards' digests") {
				t.Fatalf("verify of a damaged set: exit %d\n%s%s", code, out, errs)
			}
		})
	}
}

// pexpiretimes reads PEXPIRETIME of a sample of PopulateCluster's keys.
func pexpiretimes(t *testing.T, get func(key string) (int64, error)) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, k := range []string{"key:3", "key:7", "key:1999", "c0:hash", "c5:hash", "key:1"} {
		v, err := get(k)
		if err != nil {
			t.Fatalf("PEXPIRETIME %s: %v", k, err)
		}
		out[k] = v
	}
	return out
}

// testRestoreSet restores set into a fresh 3-primary cluster, a 2-primary
// cluster and a standalone server: each union-digest-equal to the source
// cluster, PEXPIRETIME equal on a sample.
func testRestoreSet(t *testing.T, src *redistest.Cluster, repo string, set *catalog.Set) {
	ctx := context.Background()
	scc := src.Client()
	defer scc.Close()
	want := pexpiretimes(t, func(k string) (int64, error) { return scc.Do(ctx, "PEXPIRETIME", k).Int64() })
	if want["key:3"] <= 0 || want["key:1"] != -1 {
		t.Fatalf("source PEXPIRETIME sample %v", want)
	}
	for _, primaries := range []int{3, 2} {
		t.Run(fmt.Sprintf("into %d primaries", primaries), func(t *testing.T) {
			dst := redistest.StartCluster(t, primaries, 0)
			code, out, errs := runCLI(t, "restore", "--repo", repo, "--name", "cache", "--latest", "--to-redis", dst.URL(), "--json")
			if code != 0 {
				t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
			}
			var j setRestoreJSON
			if err := json.Unmarshal([]byte(out), &j); err != nil || !j.TargetCluster || len(j.Targets) != primaries || j.KeysRestored != set.Keys {
				t.Fatalf("%v\n%s", err, out)
			}
			if got := clusterUnion(t, dst); got != set.Digest {
				t.Fatalf("target union digest %s, set %s", got, set.Digest)
			}
			dcc := dst.Client()
			defer dcc.Close()
			got := pexpiretimes(t, func(k string) (int64, error) { return dcc.Do(ctx, "PEXPIRETIME", k).Int64() })
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("PEXPIRETIME %v, source %v", got, want)
			}
		})
	}
	t.Run("into a standalone server", func(t *testing.T) {
		dst := redistest.Start(t)
		code, out, errs := runCLI(t, "restore", "--repo", repo, "--snapshot", set.ID, "--to-redis", dst.URL())
		if code != 0 || !strings.Contains(out, "standalone server") {
			t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
		}
		if got := dst.Digest(ctx); got != set.Digest {
			t.Fatalf("standalone digest %s, set %s", got, set.Digest)
		}
		got := pexpiretimes(t, func(k string) (int64, error) { return dst.Client().Do(ctx, "PEXPIRETIME", k).Int64() })
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("PEXPIRETIME %v, source %v", got, want)
		}
		// Restoring again into the now non-empty server is refused before writing.
		code, _, errs = runCLI(t, "restore", "--repo", repo, "--latest", "--to-redis", dst.URL())
		if code == 0 {
			t.Fatalf("second restore into a non-empty server: exit 0\n%s", errs)
		}
	})
}

// TestClusterShip ships every shard of a 3-primary cluster with a replica
// per primary, fails one shard over (CLUSTER FAILOVER on its replica)
// while shipping, writes on, runs FLUSHALL on every primary, then restores
// `--before-command FLUSHALL` into a fresh 3-primary cluster: its union
// digest equals the source's just before the FLUSHALL (no gap across the
// failover).
func TestClusterShip(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3, 1)
	redistest.PopulateCluster(t, c, 1000)
	c.WaitReplicated()
	repo := "file://" + filepath.Join(t.TempDir(), "repo")
	r := startShipVia(t, c.Nodes[0], c.URL(), repo, "--name", "cache", "--interval", "100ms", "--json")

	// Every shard's stream has its generation.
	shards := func() []string {
		var out []string
		var l listOutput
		if code, js, _ := runCLI(t, "list", "--repo", repo, "--json"); code != 0 || json.Unmarshal([]byte(js), &l) != nil {
			return nil // no repository yet
		}
		for _, w := range l.Generations {
			if strings.HasPrefix(w.SourceName, "cache-shard-") && w.Problem == "" {
				out = append(out, w.SourceName)
			}
		}
		return out
	}
	for i := 0; len(shards()) < 3; i++ {
		if i == 300 {
			t.Fatalf("3 shard generations not seen in 30 s: %v; ship stderr:\n%s", shards(), r.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cc := c.Client()
	defer cc.Close()
	write := func(prefix string) {
		for i := range 300 {
			if err := cc.Set(ctx, fmt.Sprintf("%s:%d", prefix, i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("before")

	// A failover inside one shard.
	rep := c.Replicas()[0]
	// A manual failover can give up silently on a starved machine (its
	// own timeout): ask again every 10 s, three times at most.
	for i := 0; ; i++ {
		info, _ := rep.Client().Info(ctx, "replication").Result()
		if strings.Contains(info, "role:master\r") {
			break
		}
		if i%100 == 0 && i < 300 {
			if err := rep.Client().Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
				t.Fatal(err)
			}
		}
		if i == 300 {
			t.Fatalf("the replica did not take over in 30 s (3 requests):\n%s", info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.WaitOK()
	cc.ReloadState(ctx)
	write("after")
	c.WaitReplicated()
	want := clusterUnion(t, c)
	for _, p := range c.Primaries() {
		if err := p.Client().FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every shard's log holds its FLUSHALL.
	for _, src := range shards() {
		for i := 0; ; i++ {
			code, out, errs := runCLI(t, "log", "--repo", repo, "--name", src, "--command", "FLUSHALL")
			if code == 0 && strings.Contains(strings.ToUpper(out), "FLUSHALL") {
				break
			}
			if i == 300 {
				t.Fatalf("%s: no FLUSHALL in the log in 30 s (log: exit %d %s%s); ship stderr:\n%s", src, code, out, errs, r.stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("ship exit %d:\n%s", code, r.stderr.String())
	}
	var st struct {
		Cluster string `json:"cluster"`
		Shards  []struct {
			Source    string
			Slots     [][2]int `json:"slots"`
			Failovers int64
		} `json:"shards"`
	}
	if err := json.Unmarshal([]byte(r.stdout.String()), &st); err != nil || len(st.Shards) != 3 {
		t.Fatalf("ship --json: %v\n%s", err, r.stdout.String())
	}
	failovers := int64(0)
	for _, sh := range st.Shards {
		failovers += sh.Failovers
	}
	if failovers == 0 {
		t.Errorf("no failover followed: %s\nstderr:\n%s", r.stdout.String(), r.stderr.String())
	}

	dst := redistest.StartCluster(t, 3, 0)
	code, out, errs := runCLI(t, "restore", "--repo", repo, "--name", "cache", "--before-command", "FLUSHALL", "--to-redis", dst.URL(), "--json")
	if code != 0 {
		t.Fatalf("restore --before-command FLUSHALL: exit %d\n%s%s", code, out, errs)
	}
	var j setPointJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil || len(j.Shards) != 3 || !strings.Contains(j.Order, "no global order") {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, sh := range j.Shards {
		if sh.Match == nil {
			t.Errorf("shard %s: cut without its FLUSHALL", sh.Source)
		}
	}
	if got := clusterUnion(t, dst); got != want {
		t.Fatalf("restored union digest %s, source before FLUSHALL %s\n%s", got, want, out)
	}
}

// TestClusterSetToDir: restore --to-dir of a backup set writes one data
// dir per shard (DIR/<shard source>/dump.rdb); a cluster-enabled
// redis-server started on each loads it and takes the slots its keys are
// in (all inside the shard's), and the union of their digests is the
// set's. drill of the set proves the union digest (exit 3 when the set's
// manifest does not match).
func TestClusterSetToDir(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	redistest.PopulateCluster(t, c, 500)
	want := clusterUnion(t, c)
	repo := "file://" + filepath.Join(t.TempDir(), "repo")
	set := snapshotCluster(t, repo, c.URL())
	dir := t.TempDir()
	code, out, errs := runCLI(t, "restore", "--repo", repo, "--snapshot", set.ID, "--to-dir", dir, "--json")
	var res struct {
		Dirs []struct {
			Source string
			Dir    string
			Slots  [][2]int
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Dirs) != 3 {
		t.Fatalf("restore --to-dir of a set: exit %d\n%s%s", code, out, errs)
	}
	var digests []string
	for _, d := range res.Dirs {
		if d.Dir != filepath.Join(dir, d.Source) {
			t.Errorf("shard %s written to %s", d.Source, d.Dir)
		}
		s := redistest.StartInDir(t, d.Dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
		digests = append(digests, s.Digest(t.Context()))
		nodes, err := s.Client().ClusterNodes(t.Context()).Result()
		if err != nil {
			t.Fatal(err)
		}
		// It took the slots it holds keys of: all inside the shard's.
		f := strings.Fields(strings.TrimSpace(nodes))
		if len(f) < 9 {
			t.Fatalf("shard %s: the node took no slot:\n%s", d.Source, nodes)
		}
		for _, tok := range f[8:] {
			var lo, hi int
			if n, _ := fmt.Sscanf(tok, "%d-%d", &lo, &hi); n == 1 {
				hi = lo
			}
			if lo < d.Slots[0][0] || hi > d.Slots[len(d.Slots)-1][1] {
				t.Errorf("shard %s (slots %v): the node took slots %s", d.Source, d.Slots, tok)
			}
		}
	}
	got, err := digest.Union(digests...)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || set.Digest != want {
		t.Fatalf("union digest of the data dirs %s, set %s, source %s", got, set.Digest, want)
	}
	// Into an existing dump.rdb: refused without --force.
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--snapshot", set.ID, "--to-dir", dir); code == 0 {
		t.Fatalf("restore --to-dir over existing dirs: exit 0\n%s%s", out, errs)
	}

	// drill of the set: a scratch server per shard, the union digest proven.
	code, out, errs = runCLI(t, "drill", "--repo", repo, "--name", "cache", "--json")
	var rep struct {
		OK     bool    `json:"ok"`
		Union  string  `json:"restored_union_digest"`
		RTO    float64 `json:"rto_seconds"`
		Shards []any   `json:"shards"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || !rep.OK || rep.Union != want || len(rep.Shards) != 3 || rep.RTO <= 0 {
		t.Fatalf("drill of the set: exit %d\n%s%s", code, out, errs)
	}
	// A set whose manifest does not match its shards fails its drill (exit 3).
	path := filepath.Join(strings.TrimPrefix(repo, "file://"), catalog.SetKey(set.Cluster, set.ID))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), set.Digest, strings.Repeat("3", 40), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "drill", "--repo", repo, "--snapshot", set.ID); code != ExitVerify || !strings.Contains(out, "FAILED") {
		t.Fatalf("drill of a damaged set: exit %d\n%s%s", code, out, errs)
	}
}
