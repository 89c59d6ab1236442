// Package gcstest starts a GCS emulator (fake-gcs-server, filesystem
// backend) on loopback for tests:
//
//	url := gcstest.Start(t) // gs://<bucket>, with STORAGE_EMULATOR_HOST set
//
// The fake-gcs-server binary is looked up in PATH and then in $(go env
// GOPATH)/bin. When it is missing the test is skipped, or fails when
// REDBACK_TEST_REQUIRE_GCS=1 (CI sets it). Install it with
//
//	go install github.com/fsouza/fake-gcs-server@v1.56.1
package gcstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"redback/internal/storage/storagetest"
)

// Version is the fake-gcs-server version scripts/setup.sh installs.
const Version = "v1.56.1"

// Server is a running fake-gcs-server.
type Server struct {
	Host   string // 127.0.0.1:PORT, the value of STORAGE_EMULATOR_HOST
	Bucket string // created by StartServer
	// Root is the filesystem backend's directory: object KEY of the
	// bucket is the file Root/Bucket/KEY (for tests that damage objects
	// at rest).
	Root string
}

// URL returns the gs:// location of prefix (may be "") in the bucket.
func (s *Server) URL(prefix string) string {
	if prefix == "" {
		return "gs://" + s.Bucket
	}
	return "gs://" + s.Bucket + "/" + prefix
}

// Start starts a server, creates a bucket, sets STORAGE_EMULATOR_HOST for
// the rest of the test (t.Setenv, so the test must not be parallel) and
// returns the bucket's gs:// URL.
func Start(t testing.TB) string {
	t.Helper()
	s := StartServer(t)
	s.SetEnv(t)
	return s.URL("")
}

// SetEnv points the backend (STORAGE_EMULATOR_HOST) at the server for
// the rest of the test.
func (s *Server) SetEnv(t testing.TB) {
	t.Helper()
	t.Setenv("STORAGE_EMULATOR_HOST", s.Host)
}

// StartServer starts fake-gcs-server on a free loopback port, waits until
// it answers, creates a bucket and stops the server when the test ends.
// It does not touch the environment.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin := storagetest.Binary(t, "fake-gcs-server", "REDBACK_TEST_REQUIRE_GCS", "go install github.com/fsouza/fake-gcs-server@"+Version)
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	s := &Server{Bucket: "redback-" + hex.EncodeToString(b), Root: root}
	s.Host = storagetest.StartEmulator(t, storagetest.Emulator{
		Name: "fake-gcs-server",
		Bin:  bin,
		Args: func(addr string) []string {
			host, port, _ := strings.Cut(addr, ":")
			// Every URL the server hands out (upload sessions) must point
			// back at loopback, never at storage.googleapis.com.
			return []string{"-scheme", "http", "-backend", "filesystem", "-filesystem-root", root,
				"-host", host, "-port", port, "-public-host", addr, "-external-url", "http://" + addr,
				"-log-level", "warn"}
		},
		Path: "/storage/v1/b",
	})
	// Create the bucket with the JSON API.
	body := fmt.Sprintf(`{"name":%q}`, s.Bucket)
	resp, err := http.Post("http://"+s.Host+"/storage/v1/b?project=test", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create bucket %s: %s", s.Bucket, resp.Status)
	}
	return s
}

// ObjectPath returns the file holding object key of location u (a
// gs://bucket/prefix URL of this server), for damage-at-rest tests.
func (s *Server) ObjectPath(u, key string) string {
	pu, _ := url.Parse(u)
	return filepath.Join(s.Root, s.Bucket, filepath.FromSlash(strings.TrimPrefix(pu.Path, "/")), filepath.FromSlash(key))
}
