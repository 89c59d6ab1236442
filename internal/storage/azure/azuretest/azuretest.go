// Package azuretest starts an Azure Blob emulator (Azurite) on loopback for
// tests:
//
//	url := azuretest.Start(t) // azblob://<container>, AZURE_STORAGE_CONNECTION_STRING set
//
// The azurite-blob binary is looked up in PATH, then in GOPATH/bin and
// ./node_modules/.bin. When it is missing the test is skipped, or fails
// when REDBACK_TEST_REQUIRE_AZURE=1 (CI sets it). Install it with
//
//	npm install -g azurite@3
//
// Azurite runs with --disableTelemetry (it would otherwise report to a
// remote service) and stores blobs under a temp dir of the test.
package azuretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"redback/internal/storage/storagetest"
)

// Account and Key are Azurite's well-known development account (public,
// documented by Microsoft; not a secret).
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Server is a running Azurite blob service.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT/devstoreaccount1
	Container string // created by StartServer
	// Dir is Azurite's --location: blob bytes live in extent files under
	// it (for tests that damage objects at rest).
	Dir string
	key string // the account's key: Key unless StartServerKey
}

// ConnectionString returns the connection string of the server.
func (s *Server) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", Account, s.key, s.Endpoint)
}

// URL returns the azblob:// location of prefix (may be "") in the container.
func (s *Server) URL(prefix string) string {
	if prefix == "" {
		return "azblob://" + s.Container
	}
	return "azblob://" + s.Container + "/" + prefix
}

// Start starts a server, creates a container, sets
// AZURE_STORAGE_CONNECTION_STRING for the rest of the test (t.Setenv, so
// the test must not be parallel) and returns the container's URL.
func Start(t testing.TB) string {
	t.Helper()
	s := StartServer(t)
	s.SetEnv(t)
	return s.URL("")
}

// SetEnv points the backend at the server for the rest of the test.
func (s *Server) SetEnv(t testing.TB) {
	t.Helper()
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", s.ConnectionString())
}

// StartServer starts azurite-blob on a free loopback port, waits until it
// answers, creates a container and stops the server when the test ends.
// It does not touch the environment.
func StartServer(t testing.TB) *Server {
	t.Helper()
	return StartServerKey(t, Key)
}

// StartServerKey is StartServer with the account's key set to key (base64;
// Azurite's AZURITE_ACCOUNTS): a test can use it as a canary secret.
func StartServerKey(t testing.TB, key string) *Server {
	t.Helper()
	cwd, _ := os.Getwd()
	bin := storagetest.Binary(t, "azurite-blob", "REDBACK_TEST_REQUIRE_AZURE", "npm install -g azurite@3",
		filepath.Join(cwd, "node_modules", ".bin"))
	dir := filepath.Join(t.TempDir(), "azurite")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	s := &Server{Container: "redback-" + hex.EncodeToString(b), Dir: dir, key: key}
	var env []string
	if key != Key {
		env = []string{"AZURITE_ACCOUNTS=" + Account + ":" + key}
	}
	addr := storagetest.StartEmulator(t, storagetest.Emulator{
		Name: "azurite-blob",
		Bin:  bin,
		Args: func(addr string) []string {
			host, port, _ := strings.Cut(addr, ":")
			return []string{"--blobHost", host, "--blobPort", port, "--location", dir,
				"--silent", "--disableTelemetry", "--skipApiVersionCheck"}
		},
		Path: "/" + Account + "?comp=list",
		Env:  env,
	})
	s.Endpoint = "http://" + addr + "/" + Account
	client, err := azblob.NewClientFromConnectionString(s.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CreateContainer(ctx, s.Container, nil); err != nil {
		t.Fatalf("create container %s: %v", s.Container, err)
	}
	return s
}
