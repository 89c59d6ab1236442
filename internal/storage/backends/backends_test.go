package backends_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"redback/internal/storage"
	"redback/internal/storage/backends"
	"redback/internal/storage/s3/s3test"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		in, wantLoc, wantErr string
	}{
		{dir, "file://" + dir, ""},
		{"file://" + dir, "file://" + dir, ""},
		{filepath.Join(dir, "with:colon"), "file://" + filepath.Join(dir, "with:colon"), ""},
		{"mem://", "mem://", ""},
		{"s3://bucket/p?region=eu-west-1", "s3://bucket/p/?region=eu-west-1", ""},
		{"gs://bucket", "", `unsupported repository scheme "gs" (supported: file, mem, s3, or a plain path)`},
		{"s3://key:topsecret@bucket", "", "credentials in the URL"},
		{"", "", "empty repository location"},
	} {
		b, err := backends.Open(t.Context(), tc.in)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Open(%q): %v", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Open(%q) error = %v, want %q", tc.in, err, tc.wantErr)
		case err != nil && strings.Contains(err.Error(), "topsecret"):
			t.Errorf("Open(%q) error leaks the secret: %v", tc.in, err)
		case err == nil:
			if b.Location() != tc.wantLoc {
				t.Errorf("Open(%q).Location() = %q, want %q", tc.in, b.Location(), tc.wantLoc)
			}
			_ = b.Close()
		}
	}
}

func TestOpen_RoundTrip(t *testing.T) {
	for name, loc := range map[string]string{
		"file": filepath.Join(t.TempDir(), "repo"),
		"s3":   s3test.Start(t),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := backends.Open(t.Context(), loc)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if _, err := b.Put(t.Context(), "a/b", strings.NewReader("hello")); err != nil {
				t.Fatal(err)
			}
			if fi, err := b.Stat(t.Context(), "a/b"); err != nil || fi.Size != 5 {
				t.Errorf("Stat = %+v, %v", fi, err)
			}
			if _, err := b.Stat(t.Context(), "a/c"); !errors.Is(err, storage.ErrNotExist) {
				t.Errorf("Stat of a missing key error = %v, want ErrNotExist", err)
			}
		})
	}
}
