package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"redback/internal/catalog"
	"redback/internal/redistest"
	"redback/internal/storage/backends"
)

// snapshot --from-rdb imports an exported RDB -- a local file, or an
// object in S3, GCS or Azure Blob (the emulators) -- as a verified
// snapshot (method rdb-file) that restores digest-equal; a damaged export
// stores nothing and exits 3; --name is required.
func TestSnapshot_FromRDB(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	redistest.Populate(t, src, 300)
	want := src.Digest(ctx)
	if err := src.Client().Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(src.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(data)
	damaged[len(damaged)/2] ^= 0x40

	file := filepath.Join(t.TempDir(), "export.rdb")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(data); err != nil || zw.Close() != nil {
		t.Fatal(err)
	}
	gzFile := filepath.Join(t.TempDir(), "export.rdb.gz")
	if err := os.WriteFile(gzFile, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "snapshot", "--from-rdb", file, "--repo", t.TempDir()); code != ExitUsage || !strings.Contains(errs, "--name") {
		t.Fatalf("without --name: exit %d, want 2\n%s", code, errs)
	}
	for _, kind := range []string{"file", "gzip", "s3", "gs", "azblob"} {
		t.Run(kind, func(t *testing.T) {
			obj, bad := file, "file://"+filepath.Join(filepath.Dir(file), "damaged.rdb")
			if kind == "gzip" {
				obj = gzFile
			}
			if kind != "file" && kind != "gzip" {
				st := startStore(t, kind)
				obj, bad = objectURL(st.url, "exports/cache-a.rdb"), objectURL(st.url, "exports/damaged.rdb")
				putObject(t, obj, data)
			}
			putObject(t, bad, damaged)
			repo := t.TempDir()
			code, out, errs := runCLI(t, "snapshot", "--from-rdb", obj, "--repo", repo, "--name", "cache-a", "--json")
			if code != ExitOK {
				t.Fatalf("snapshot --from-rdb: exit %d\n%s", code, errs)
			}
			var snap catalog.Snapshot
			if err := json.Unmarshal([]byte(out), &snap); err != nil || !snap.Verified || snap.Method != catalog.MethodRDBFile || snap.Digest != want {
				t.Fatalf("snapshot --from-rdb: %v %+v, want digest %s", err, snap, want)
			}
			dst := redistest.Start(t)
			if code, _, errs := runCLI(t, "restore", "--repo", repo, "--name", "cache-a", "--to-redis", dst.URL()); code != ExitOK {
				t.Fatalf("restore: exit %d\n%s", code, errs)
			}
			if got := dst.Digest(ctx); got != want {
				t.Fatalf("restored digest %s, want %s", got, want)
			}
			if code, _, errs := runCLI(t, "snapshot", "--from-rdb", bad, "--repo", repo, "--name", "cache-a"); code != ExitVerify {
				t.Fatalf("damaged export: exit %d, want 3\n%s", code, errs)
			}
			snaps, _, err := catalog.ListSnapshots(ctx, sourceView(t, repo, "cache-a"))
			if err != nil || len(snaps) != 1 {
				t.Fatalf("after the damaged import: %d snapshots, %v; want the first alone", len(snaps), err)
			}
		})
	}
}

// objectURL is the URL of the object key below the store location loc
// (which may carry parameters after '?').
func objectURL(loc, key string) string {
	base, q, _ := strings.Cut(loc, "?")
	u := strings.TrimSuffix(base, "/") + "/" + key
	if q != "" {
		u += "?" + q
	}
	return u
}

// putObject stores data as the object at url.
func putObject(t *testing.T, url string, data []byte) {
	t.Helper()
	b, key, err := backends.OpenObject(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Put(t.Context(), key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}
