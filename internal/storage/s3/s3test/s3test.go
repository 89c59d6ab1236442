package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"redback/internal/storage/storagetest"
)

// Region is the region the test server and clients use.
const Region = "us-east-1"

// Server is a running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Bucket    string // created by StartServer
	// Root is the server's posix root: object K of the bucket is the file
	// Root/Bucket/K (tests damage objects at rest there).
	Root string
}

// URL returns the s3:// location of prefix (may be "") in the bucket.
func (s *Server) URL(prefix string) string {
	q := url.Values{}
	q.Set("endpoint", s.Endpoint)
	q.Set("use_path_style", "true")
	q.Set("region", Region)
	u := url.URL{Scheme: "s3", Host: s.Bucket, RawQuery: q.Encode()}
	if prefix != "" {
		u.Path = "/" + prefix
	}
	return u.String()
}

// Start starts a server, creates a bucket, points the AWS_* environment
// of the test at the server's credentials (t.Setenv, so the test must not
// be parallel) and returns the bucket's s3:// URL.
func Start(t testing.TB) string {
	t.Helper()
	s := StartServer(t)
	SetEnv(t, s.AccessKey, s.SecretKey)
	return s.URL("")
}

// SetEnv makes the SDK's default credential chain use exactly these
// credentials for the rest of the test: no profile, config file or IMDS.
func SetEnv(t testing.TB, accessKey, secretKey string) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "no-such-aws-config")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           accessKey,
		"AWS_SECRET_ACCESS_KEY":       secretKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  Region,
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
}

// Binary returns the versitygw path, skipping (or failing, when
// REDBACK_TEST_REQUIRE_S3=1) the test when it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	return storagetest.Binary(t, "versitygw", "REDBACK_TEST_REQUIRE_S3", "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// FreePort returns a loopback address with a port nothing listens on
// (at the time of the call).
func FreePort(t testing.TB) string { return storagetest.FreePort(t) }

// StartServer starts versitygw on a free loopback port with random root
// credentials, waits until it answers, creates a bucket and stops the
// server when the test ends. It does not touch the environment.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Root:      root,
		AccessKey: "test" + randomHex(8),
		SecretKey: randomHex(20),
		Bucket:    "redback-" + randomHex(4),
	}
	addr := storagetest.StartEmulator(t, storagetest.Emulator{
		Name: "versitygw",
		Bin:  bin,
		Args: func(addr string) []string { return []string{"--port", addr, "posix", root} },
		Env:  []string{"ROOT_ACCESS_KEY=" + s.AccessKey, "ROOT_SECRET_KEY=" + s.SecretKey},
	})
	s.Endpoint = "http://" + addr
	client := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", s.Bucket, err)
	}
	return s
}

// Client returns an SDK client with the server's root credentials.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	})
}
