package azure_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"redback/internal/storage"
	"redback/internal/storage/azure"
	"redback/internal/storage/azure/azuretest"
	"redback/internal/storage/storagetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The SDK's shared HTTP client keeps idle connections.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("internal/poll.runtime_pollWait"),
	)
}

func TestBackend(t *testing.T) {
	url := azuretest.Start(t)
	var n atomic.Int64
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		c, err := azure.ParseURL(fmt.Sprintf("%s/t%d", url, n.Add(1)))
		if err != nil {
			t.Fatal(err)
		}
		c.BlockSize = 1 << 20 // several blocks for the suite's larger objects
		b, err := azure.New(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// DamageAtRest flips a byte of the stored object in Azurite's extent
// files; a whole read then fails the Content-MD5 check.
func TestBackend_DamageAtRest(t *testing.T) {
	srv := azuretest.StartServer(t)
	srv.SetEnv(t)
	b, err := azure.Open(t.Context(), srv.URL("p"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	marker := []byte("redback-damage-marker-0123456789")
	data := bytes.Repeat(marker, 512)
	if _, err := b.Put(t.Context(), "obj", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if n := storagetest.DamageAtRest(t, srv.Dir, marker); n == 0 {
		t.Fatal("the object's bytes were not found in Azurite's files")
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
		c, err := azure.ParseURL(u)
		return c.Location(), err
	}, [][3]string{
		{"azblob://backups", "azblob://backups/", ""},
		{"azblob://backups/redis/a?account=acct", "azblob://backups/redis/a/?account=acct", ""},
		{"azblob://backups?endpoint=http://127.0.0.1:10000/devstoreaccount1", "azblob://backups/?endpoint=http%3A%2F%2F127.0.0.1%3A10000%2Fdevstoreaccount1", ""},
		{"azblob://acct:topsecret@backups", "", "credentials in the URL"},
		{"azblob://backups?endpoint=http://127.0.0.1/?sig=topsecret", "", "SAS"},
		{"azblob://backups?sas=topsecret", "", "unknown URL parameter"},
		{"azblob://Backups", "", "container name"},
		{"azblob:///p", "", "no container"},
		{"azblob://backups/a//b", "", "invalid key"},
		{"gs://backups", "", "scheme"},
	})
}

// Without any credential source, Open says what to set (and New sends
// nothing).
func TestOpen_NoAccount(t *testing.T) {
	c, err := azure.ParseURL("azblob://backups")
	if err != nil {
		t.Fatal(err)
	}
	c.Getenv = func(string) string { return "" }
	if _, err := azure.New(t.Context(), c); err == nil || !strings.Contains(err.Error(), "AZURE_STORAGE_ACCOUNT") {
		t.Errorf("New without an account: %v, want it to name AZURE_STORAGE_ACCOUNT", err)
	}
}
