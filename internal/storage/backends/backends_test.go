package backends_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"redback/internal/storage"
	"redback/internal/storage/azure/azuretest"
	"redback/internal/storage/backends"
	"redback/internal/storage/gcs/gcstest"
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
		{"ftp://host/x", "", `unsupported repository scheme "ftp" (supported: azblob, file, gs, mem, s3, or a plain path)`},
		{"gs://user:topsecret@bucket", "", "credentials in the URL"},
		{"azblob://acct:topsecret@container", "", "credentials in the URL"},
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

func TestCheck(t *testing.T) {
	for _, tc := range []struct{ in, wantErr string }{
		{"/var/lib/redback/a", ""},
		{"file:///var/lib/redback/a", ""},
		{"s3://bucket/p?region=eu-west-1", ""},
		{"gs://bucket/p", ""},
		{"azblob://container/p?account=acct", ""},
		{"mem://", ""},
		{"file://remote/x", "remote host"},
		{"s3://bucket?bogus=1", "unknown URL parameter"},
		{"gs://bucket?bogus=1", "no parameters"},
		{"azblob://Container", "container name"},
		{"ftp://host/x", `unsupported repository scheme "ftp"`},
		{"gs://user:topsecret@bucket", "credentials in the URL"},
	} {
		err := backends.Check(tc.in)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Check(%q): %v", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Check(%q) error = %v, want %q", tc.in, err, tc.wantErr)
		case err != nil && strings.Contains(err.Error(), "topsecret"):
			t.Errorf("Check(%q) error leaks the secret: %v", tc.in, err)
		}
	}
}

func TestOpen_RoundTrip(t *testing.T) {
	for name, start := range map[string]func(t *testing.T) string{
		"file":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "repo") },
		"s3":     func(t *testing.T) string { return s3test.Start(t) },
		"gs":     func(t *testing.T) string { return gcstest.Start(t) },
		"azblob": func(t *testing.T) string { return azuretest.Start(t) },
	} {
		t.Run(name, func(t *testing.T) {
			b, err := backends.Open(t.Context(), start(t))
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
