package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"redback/internal/cluster"
	"redback/internal/clusterset"
	"redback/internal/digest"
	"redback/internal/redistest"
)

// loadedKeys starts a standalone server on dir (its dump.rdb) and returns
// it with every key it loaded.
func loadedKeys(t *testing.T, dir string) (*redistest.Server, []string) {
	t.Helper()
	s := redistest.StartInDir(t, dir)
	keys, err := s.Client().Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return s, keys
}

// TestClusterSetToFiles writes a backup set of a 3-primary cluster (with
// a function library on every node) as one data dir per primary of a
// 2-primary target cluster (--to-dir --slots-from) and as one RDB file
// (--to-rdb). Each node's dump.rdb, loaded by a server, holds only keys of
// the slots that node serves, and the function; the union of their
// digests is the source's; the single file's digest is the source's. An
// existing file is refused without --force.
func TestClusterSetToFiles(t *testing.T) {
	ctx := context.Background()
	src := redistest.StartCluster(t, 3, 0)
	redistest.PopulateCluster(t, src, 500)
	// Values over the Reader's 1 MiB StreamAbove: copied into the files
	// and digested as they stream.
	cc := src.Client()
	for i := 0; i < 40_000; i += 1000 {
		elems := make([]any, 0, 1000)
		for j := i; j < i+1000; j++ {
			elems = append(elems, fmt.Sprintf("%08d-%055d", j, j))
		}
		if err := cc.RPush(ctx, "big:list", elems...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cc.Set(ctx, "big:string", strings.Repeat("0123456789abcdef", 200_000), 0).Err(); err != nil {
		t.Fatal(err)
	}
	lib := "#!lua name=restoretest\nredis.register_function('ping1', function() return 1 end)"
	for _, p := range src.Primaries() {
		if err := p.Client().FunctionLoad(ctx, lib).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := clusterUnion(t, src)
	repo := "file://" + filepath.Join(t.TempDir(), "repo")
	set := snapshotCluster(t, repo, src.URL())
	tgt := redistest.StartCluster(t, 2, 0)

	dir := t.TempDir()
	code, out, errs := runCLI(t, "restore", "--repo", repo, "--snapshot", set.ID, "--to-dir", dir, "--slots-from", tgt.URL(), "--json")
	var res struct {
		Files       []clusterset.FileResult
		FilesDigest string `json:"files_digest"`
		Keys        int64
		Order       string
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Files) != 2 || !strings.Contains(res.Order, "no global order") {
		t.Fatalf("restore --to-dir --slots-from of a set: exit %d\n%s%s", code, out, errs)
	}
	if res.FilesDigest != want {
		t.Fatalf("files digest %s, source %s", res.FilesDigest, want)
	}
	var digests []string
	nodes := map[string]bool{}
	for _, p := range tgt.Primaries() {
		nodes[p.Addr()] = true
	}
	var total int
	for _, f := range res.Files {
		if !nodes[f.Node] || f.Path != filepath.Join(dir, clusterset.NodeDirName(f.Node), "dump.rdb") {
			t.Fatalf("file %s for node %s (target primaries %v)", f.Path, f.Node, nodes)
		}
		owns := make([]bool, cluster.Slots)
		for _, r := range f.Slots {
			for s := r[0]; s <= r[1]; s++ {
				owns[s] = true
			}
		}
		s, keys := loadedKeys(t, filepath.Dir(f.Path))
		if len(keys) == 0 {
			t.Fatalf("%s: no keys", f.Path)
		}
		for _, k := range keys {
			if !owns[cluster.Slot([]byte(k))] {
				t.Fatalf("%s (node %s, slots %v): key %q is in slot %d", f.Path, f.Node, f.Slots, k, cluster.Slot([]byte(k)))
			}
		}
		total += len(keys)
		d := s.Digest(ctx)
		if d != f.Digest {
			t.Errorf("%s: loaded digest %s, reported %s", f.Path, d, f.Digest)
		}
		digests = append(digests, d)
		if fl, err := s.Client().FunctionList(ctx, redis.FunctionListQuery{}).Result(); err != nil || len(fl) != 1 {
			t.Errorf("%s: functions %v, %v", f.Path, fl, err)
		}
	}
	if got, err := digest.Union(digests...); err != nil || got != want || int64(total) != res.Keys {
		t.Fatalf("union digest of the loaded files %s (%v), source %s; %d keys loaded, %d reported", got, err, want, total, res.Keys)
	}
	// Again into the same dirs: refused without --force.
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--snapshot", set.ID, "--to-dir", dir, "--slots-from", tgt.URL()); code != 1 || !strings.Contains(errs, "--force") {
		t.Fatalf("restore --slots-from over existing files: exit %d\n%s%s", code, out, errs)
	}
	// --slots-from without a set: usage.
	if code, out, errs := runCLI(t, "restore", "--from-rdb", filepath.Join(dir, "x.rdb"), "--to-dir", dir, "--slots-from", tgt.URL()); code != ExitUsage {
		t.Fatalf("--slots-from of a file: exit %d\n%s%s", code, out, errs)
	}

	// One RDB file with every key in db 0.
	one := t.TempDir()
	code, out, errs = runCLI(t, "restore", "--repo", repo, "--snapshot", set.ID, "--to-rdb", filepath.Join(one, "dump.rdb"))
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("restore --to-rdb of a set: exit %d\n%s%s", code, out, errs)
	}
	s, keys := loadedKeys(t, one)
	if got := s.Digest(ctx); got != want || int64(len(keys)) != res.Keys {
		t.Fatalf("the set as one RDB: digest %s, source %s; %d keys, %d in the set", got, want, len(keys), res.Keys)
	}
}
