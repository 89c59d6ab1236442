package cli

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"redback/internal/catalog"
	"redback/internal/redistest"
	"redback/internal/storage/file"
	"redback/internal/storage/s3/s3test"
)

func flipByte(t *testing.T, path string, at func(n int) int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[at(len(data))] ^= 0x20
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReliability_AtRestDamage damages one stored object of each kind
// (snapshot data, snapshot manifest, segment data, segment index, lease)
// in a copy of a repository and checks that verify, drill and restore
// each exit 3 and name the damaged object.
func TestReliability_AtRestDamage(t *testing.T) {
	r := newPITRRepo(t)
	ctx := t.Context()
	b, err := file.New(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := catalog.ReadGeneration(ctx, b, r.gen)
	if err != nil {
		t.Fatal(err)
	}
	base, err := catalog.ReadSnapshot(ctx, b, g.BaseSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	segs, err := catalog.ListSegments(ctx, b, r.gen)
	if err != nil || len(segs) < 2 {
		t.Fatalf("segments %d %v", len(segs), err)
	}
	seg := segs[len(segs)-1]
	segManifest := catalog.SegmentKey(seg.Generation, seg.Start, seg.End)
	for _, tc := range []struct {
		kind   string
		object string // the key the output must name
		damage func(dir string)
	}{
		{"snapshot", base.Object.Key, func(dir string) {
			flipByte(t, filepath.Join(dir, base.Object.Key), func(n int) int { return n / 2 })
		}},
		{"manifest", catalog.SnapshotManifestKey(base.ID), func(dir string) {
			p := filepath.Join(dir, catalog.SnapshotManifestKey(base.ID))
			data, _ := os.ReadFile(p)
			os.WriteFile(p, data[:len(data)/2], 0o644)
		}},
		{"segment", seg.Object.Key, func(dir string) {
			flipByte(t, filepath.Join(dir, seg.Object.Key), func(n int) int { return n / 2 })
		}},
		{"index", segManifest, func(dir string) {
			p := filepath.Join(dir, segManifest)
			data, _ := os.ReadFile(p)
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			idx := m["index"].([]any)
			cp := idx[len(idx)-1].([]any)
			cp[1] = cp[1].(float64) + 3 // an offset that contradicts the content
			data, _ = json.Marshal(m)
			os.WriteFile(p, data, 0o644)
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			dir := copyTree(t, r.dir)
			tc.damage(dir)
			for _, args := range [][]string{
				{"verify", "--repo", dir},
				{"drill", "--repo", dir, "--latest-point"},
				{"restore", "--repo", dir, "--latest-point", "--to-dir", t.TempDir()},
			} {
				code, out, errs := runPITRCLI(t, args...)
				if code != ExitVerify || !strings.Contains(out+errs, tc.object) {
					t.Errorf("%s damaged: %s: exit %d, want 3 naming %s\n%s%s", tc.kind, args[0], code, tc.object, out, errs)
				}
				if args[0] == "drill" && !strings.Contains(out, "drill FAILED") {
					t.Errorf("%s damaged: drill says no verdict:\n%s%s", tc.kind, out, errs)
				}
			}
		})
	}

	// A damaged lease: verify reports it (exit 3), writers refuse naming
	// it (exit 3); drill and restore do not need the lease and still work.
	t.Run("lease", func(t *testing.T) {
		dir := copyTree(t, r.dir)
		if err := os.WriteFile(filepath.Join(dir, catalog.LeaseKey), []byte(`{"format": 1, "holder": "h`), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"verify", "--repo", dir}, {"prune", "--repo", dir}} {
			code, out, errs := runPITRCLI(t, args...)
			if code != ExitVerify || !strings.Contains(out+errs, catalog.LeaseKey) {
				t.Errorf("lease damaged: %s: exit %d, want 3 naming %s\n%s%s", args[0], code, catalog.LeaseKey, out, errs)
			}
		}
		code, out, errs := runPITRCLI(t, "restore", "--repo", dir, "--latest-point", "--to-dir", t.TempDir())
		if code != ExitOK {
			t.Errorf("lease damaged: restore: exit %d\n%s%s", code, out, errs)
		}
	})
}

// TestReliability_S3DamageAtRest alters a stored snapshot's bytes on the S3
// server's own disk: the SDK's checksum check (or ours) fails, and verify,
// drill and restore all exit 3 naming the object; verify says DAMAGED,
// never UNCHECKED, and drill prints its ✗ line and "drill FAILED".
func TestReliability_S3DamageAtRest(t *testing.T) {
	srv := s3test.StartServer(t)
	s3test.SetEnv(t, srv.AccessKey, srv.SecretKey)
	repo := srv.URL("r")
	src := redistest.Start(t)
	ctx := t.Context()
	for i := range 2000 {
		src.Client().Set(ctx, fmt.Sprintf("k%d", i), fmt.Sprintf("%x", sha256.Sum256([]byte(strconv.Itoa(i)))), 0)
	}
	if code, out, errs := runPITRCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
	}
	var obj string
	filepath.Walk(filepath.Join(srv.Root, srv.Bucket), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.HasSuffix(p, ".rdb.zst") {
			obj = p
		}
		return nil
	})
	if obj == "" {
		t.Fatal("no stored snapshot object under the server's root")
	}
	key := obj[strings.Index(obj, "data/snapshots/"):] // as messages name it
	for _, damage := range []string{"bit flip", "truncated"} {
		t.Run(damage, func(t *testing.T) {
			data, err := os.ReadFile(obj)
			if err != nil {
				t.Fatal(err)
			}
			orig := append([]byte(nil), data...)
			defer os.WriteFile(obj, orig, 0o644)
			if damage == "bit flip" {
				data[len(data)/2] ^= 0x01
			} else {
				data = data[:len(data)-100]
			}
			if err := os.WriteFile(obj, data, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{
				{"verify", "--repo", repo},
				{"drill", "--repo", repo},
				{"restore", "--repo", repo, "--latest", "--to-redis", redistest.Start(t).URL()},
			} {
				code, out, errs := runPITRCLI(t, args...)
				if code != ExitVerify || !strings.Contains(out+errs, key) {
					t.Errorf("%s: %s: exit %d, want 3 naming %s\n%s%s", damage, args[0], code, key, out, errs)
				}
				switch args[0] {
				case "verify":
					if strings.Contains(out, "UNCHECKED") || !strings.Contains(out, "DAMAGED") {
						t.Errorf("%s: verify labels:\n%s", damage, out)
					}
				case "drill":
					if !strings.Contains(out, "✗") || !strings.Contains(out, "drill FAILED") {
						t.Errorf("%s: drill verdict:\n%s%s", damage, out, errs)
					}
				case "restore":
					if !strings.Contains(errs, "nothing was written") {
						t.Errorf("%s: restore wrote before finding the damage:\n%s%s", damage, out, errs)
					}
				}
			}
		})
	}
}
