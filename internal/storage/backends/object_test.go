package backends_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"redback/internal/storage"
	"redback/internal/storage/backends"
)

// OpenObject splits a location into the store holding the object and the
// object's key: plain paths and file:// URLs here; the object stores in
// the cli's snapshot --from-rdb test.
func TestOpenObject(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dump.rdb"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, loc := range []string{filepath.Join(dir, "dump.rdb"), "file://" + filepath.Join(dir, "dump.rdb")} {
		b, key, err := backends.OpenObject(t.Context(), loc)
		if err != nil || key != "dump.rdb" {
			t.Fatalf("%s: key %q, %v", loc, key, err)
		}
		info, err := b.Stat(t.Context(), key)
		b.Close()
		if err != nil || info.Size != 1 {
			t.Fatalf("%s: stat %+v, %v", loc, info, err)
		}
	}
	for _, loc := range []string{"s3://bucket/", "gs://bucket", "file:///", "ftp://host/x.rdb"} {
		if _, _, err := backends.OpenObject(t.Context(), loc); !errors.Is(err, storage.ErrInvalidLocation) {
			t.Errorf("%s: %v, want ErrInvalidLocation", loc, err)
		}
	}
}
