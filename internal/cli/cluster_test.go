package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

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
			// --single-node backs up one node, as before.
			code, out, errs := runCLI(t, "snapshot", "--source", c.Primaries()[0].URL(), "--repo", repo, "--name", "one", "--single-node")
			if code != 0 || !strings.Contains(out, "snapshot ") {
				t.Fatalf("--single-node: exit %d\n%s%s", code, out, errs)
			}
		})
	}
}
