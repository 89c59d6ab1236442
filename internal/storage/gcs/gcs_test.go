package gcs_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"redback/internal/storage"
	"redback/internal/storage/gcs"
	"redback/internal/storage/gcs/gcstest"
	"redback/internal/storage/storagetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestBackend(t *testing.T) {
	url := gcstest.Start(t)
	var n atomic.Int64
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := gcs.Open(t.Context(), fmt.Sprintf("%s/t%d", url, n.Add(1)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// An object changed at rest fails the client's CRC32C check on a whole
// read: a *storage.CorruptError, which means exit 3.
func TestBackend_DamageAtRest(t *testing.T) {
	srv := gcstest.StartServer(t)
	srv.SetEnv(t)
	u := srv.URL("p")
	b, err := gcs.Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := strings.Repeat("redback damage test ", 1000)
	if _, err := b.Put(t.Context(), "obj", strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	path := srv.ObjectPath(u, "obj")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[100] ^= 0xff
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err := b.Get(t.Context(), "obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	_ = rc.Close()
	var d *storage.CorruptError
	if !errors.As(err, &d) || d.Key != "obj" {
		t.Fatalf("reading a damaged object: error %v, want a *storage.CorruptError for obj", err)
	}
}

func TestParseURL(t *testing.T) {
	storagetest.URLs(t, func(u string) (string, error) {
		c, err := gcs.ParseURL(u)
		return c.Location(), err
	}, [][3]string{
		{"gs://bucket", "gs://bucket/", ""},
		{"gs://bucket/p/q", "gs://bucket/p/q/", ""},
		{"gs://user:topsecret@bucket/p", "", "credentials in the URL"},
		{"gs://bucket/p?x=1", "", "no parameters"},
		{"gs:///p", "", "no bucket"},
		{"gs://b/p", "", "bucket name"},
		{"gs://bucket/a//c", "", "invalid key"},
		{"s3://bucket", "", "scheme"},
	})
}
