package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	const msg = "versitygw not found in PATH or GOPATH/bin (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)"
	if os.Getenv("REDBACK_TEST_REQUIRE_S3") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// FreePort returns a loopback address with a port nothing listens on
// (at the time of the call).
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

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
	var cmd *exec.Cmd
	var logPath string
	for attempt := 0; ; attempt++ { // a port race with another process: retry a few times
		addr := FreePort(t)
		s.Endpoint = "http://" + addr
		logPath = filepath.Join(dir, fmt.Sprintf("versitygw-%d.log", attempt))
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(bin, "--port", addr, "posix", root)
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			_ = logf.Close()
			t.Fatalf("start versitygw: %v", err)
		}
		_ = logf.Close()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		err = waitReady(s.Endpoint, exited, 15*time.Second)
		if err == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(os.Interrupt)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
			})
			break
		}
		_ = cmd.Process.Kill()
		<-exited
		if attempt == 2 {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("versitygw did not start: %v\n%s", err, log)
		}
	}
	client := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("create bucket %s: %v\n%s", s.Bucket, err, log)
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

// waitReady polls endpoint until it answers HTTP, the process exits or
// the timeout passes.
func waitReady(endpoint string, exited <-chan error, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := hc.Get(endpoint)
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		case <-deadline.C:
			return errors.New("timed out waiting for it to answer")
		case <-tick.C:
		}
	}
}
