package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"redback/internal/catalog"
	"redback/internal/redistest"
)

// TestClusterPrune: retention keeps or drops a backup set whole, and
// drops one only when a newer verified set covers it. Three sets A, B, C
// (newest) with C's manifest not matching its shards (unverified): with
// hourly 1 and nothing else, C stays (no verified set covers it), B stays
// (the newest verified), A goes with its shards' snapshots; B's snapshots
// stay and B restores digest-equal. A shard of a cluster with sets is not
// pruned alone.
func TestClusterPrune(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	redistest.PopulateCluster(t, c, 300)
	want := clusterUnion(t, c)
	dir := filepath.Join(t.TempDir(), "repo")
	repo := "file://" + dir
	a := snapshotCluster(t, repo, c.URL())
	b := snapshotCluster(t, repo, c.URL())
	cs := snapshotCluster(t, repo, c.URL())
	path := filepath.Join(dir, catalog.SetKey("cache", cs.ID))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := strings.Replace(string(data), cs.Shards[0].Digest, strings.Repeat("2", 40), 1)
	if err := os.WriteFile(path, []byte(damaged), 0o644); err != nil {
		t.Fatal(err)
	}
	keep := []string{"--keep-hourly", "1", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0", "--keep-pitr", "0"}

	// A dry run says so and changes nothing.
	code, out, errs := runCLI(t, append([]string{"prune", "--repo", repo, "--name", "cache", "--dry-run", "--json"}, keep...)...)
	var res struct {
		DryRun      bool     `json:"dry_run"`
		DeletedSets []string `json:"deleted_sets"`
		Sets        []catalog.Decision
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !res.DryRun || len(res.DeletedSets) != 1 || res.DeletedSets[0] != a.ID || len(res.Sets) != 3 {
		t.Fatalf("prune --dry-run: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, catalog.SetKey("cache", a.ID))); err != nil {
		t.Fatalf("the dry run removed set A: %v", err)
	}

	code, out, errs = runCLI(t, append([]string{"prune", "--repo", repo}, keep...)...) // the repository holds one cluster: --name may go
	if code != 0 || !strings.Contains(out, "3 backup set(s) of cluster cache: delete 1, keeping 2") {
		t.Fatalf("prune: exit %d\n%s%s", code, out, errs)
	}
	for _, tc := range []struct {
		set  *catalog.Set
		kept bool
	}{{a, false}, {b, true}, {cs, true}} {
		_, err := os.Stat(filepath.Join(dir, catalog.SetKey("cache", tc.set.ID)))
		if (err == nil) != tc.kept {
			t.Errorf("set %s: manifest there %v, want %v", tc.set.ID, err == nil, tc.kept)
		}
		for _, sh := range tc.set.Shards {
			_, err := catalog.ReadSnapshot(t.Context(), sourceView(t, dir, sh.Source), sh.Snapshot)
			if tc.kept && err != nil || !tc.kept && !errors.Is(err, catalog.ErrNoSnapshot) {
				t.Errorf("set %s shard %s snapshot %s: %v (kept: %v)", tc.set.ID, sh.Source, sh.Snapshot, err, tc.kept)
			}
		}
	}
	dst := redistest.Start(t)
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--snapshot", b.ID, "--to-redis", dst.URL()); code != 0 {
		t.Fatalf("restore of set B: exit %d\n%s%s", code, out, errs)
	}
	if got := dst.Digest(t.Context()); got != want {
		t.Fatalf("set B restored: digest %s, want %s", got, want)
	}
	if code, out, errs := runCLI(t, "prune", "--repo", repo, "--name", "cache-shard-00000"); code != ExitUsage || !strings.Contains(errs, "shard of cluster cache") {
		t.Fatalf("prune of one shard: exit %d\n%s%s", code, out, errs)
	}
}
