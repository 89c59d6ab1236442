package file_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"redback/internal/storage"
	"redback/internal/storage/file"
	"redback/internal/storage/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBackend(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := file.New(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		in, want string // want "" means an error
	}{
		{dir, "file://" + dir},
		{"file://" + dir, "file://" + dir},
		{"file://localhost" + dir, "file://" + dir},
		{"file://otherhost/x", ""},
		{"file:relative", ""},
		{"", ""},
	} {
		b, err := file.New(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("New(%q) succeeded, want error", tc.in)
		case tc.want != "" && err != nil:
			t.Errorf("New(%q): %v", tc.in, err)
		case tc.want != "" && b.Location() != tc.want:
			t.Errorf("New(%q).Location() = %q, want %q", tc.in, b.Location(), tc.want)
		}
	}
	f := filepath.Join(dir, "plain")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := file.New(f); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("New(file) error = %v, want 'not a directory'", err)
	}
}

func TestBackend_ReservedNames(t *testing.T) {
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(t.Context(), "a/.redback-tmp-x", strings.NewReader("x")); err == nil {
		t.Error("Put of a reserved name succeeded")
	}
	// Stray temporary files (from a crash) are not listed.
	if err := os.WriteFile(filepath.Join(dir, ".redback-tmp-123"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := b.List(t.Context(), "", func(storage.ObjectInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("List = %d objects, %v; want 0, nil", n, err)
	}
}

// TestBackend_Temps: the staging files a killed writer left are listed by
// ListTemps (through a scope, with keys relative to it) and removed by
// RemoveTemp; objects, the lock file and names outside the pattern are
// neither listed nor removable that way.
func TestBackend_Temps(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "src/a/obj", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"src/a/.redback-tmp-1", "src/.redback-tmp-2", ".redback-tmp-3", "src/a/.redback-other"} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list := func(b storage.Backend, prefix string) []string {
		var keys []string
		if err := storage.ListTemps(ctx, b, prefix, func(o storage.ObjectInfo) error {
			keys = append(keys, o.Key)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if got := strings.Join(list(b, ""), " "); got != ".redback-tmp-3 src/.redback-tmp-2 src/a/.redback-tmp-1" {
		t.Fatalf("ListTemps = %q", got)
	}
	scoped := storage.Scope(b, "src/")
	if got := strings.Join(list(scoped, "a/"), " "); got != "a/.redback-tmp-1" {
		t.Fatalf("scoped ListTemps = %q", got)
	}
	for _, k := range []string{"a/obj", "a/.redback-other", "../.redback-tmp-3"} {
		if err := storage.RemoveTemp(ctx, scoped, k); err == nil {
			t.Errorf("RemoveTemp(%q) succeeded", k)
		}
	}
	if err := storage.RemoveTemp(ctx, scoped, "a/.redback-tmp-1"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(list(b, ""), " "); got != ".redback-tmp-3 src/.redback-tmp-2" {
		t.Fatalf("after RemoveTemp: ListTemps = %q", got)
	}
	if _, err := b.Stat(ctx, "src/a/obj"); err != nil {
		t.Fatal(err)
	}
}
