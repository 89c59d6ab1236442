package s3_test

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"redback/internal/storage"
	"redback/internal/storage/s3"
	"redback/internal/storage/s3/s3test"
)

// recorder is a reverse proxy on loopback that keeps the headers of every
// request that creates an object (PUT without partNumber, POST ?uploads).
type recorder struct {
	mu   sync.Mutex
	reqs []http.Request
}

func (r *recorder) start(t *testing.T, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		if (req.Method == http.MethodPut && !q.Has("partNumber")) || (req.Method == http.MethodPost && q.Has("uploads")) {
			r.mu.Lock()
			r.reqs = append(r.reqs, http.Request{Method: req.Method, URL: req.URL, Header: req.Header.Clone()})
			r.mu.Unlock()
		}
		proxy.ServeHTTP(w, req)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestObjectLockAndSSE checks that every object written carries the
// Object Lock retention and the SSE-KMS headers (conditional writes, the
// leases updated in place, carry no lock), that the server then refuses nothing, and that
// LockedUntil reads the retention back.
func TestObjectLockAndSSE(t *testing.T) {
	srv := s3test.StartServer(t)
	s3test.SetEnv(t, srv.AccessKey, srv.SecretKey)
	client := srv.Client()
	bucket := "locked-" + strings.ToLower(srv.Bucket)
	if _, err := client.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(bucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("create bucket with Object Lock: %v", err)
	}
	rec := &recorder{}
	endpoint := rec.start(t, srv.Endpoint)
	raw := "s3://" + bucket + "/repo?endpoint=" + url.QueryEscape(endpoint) + "&use_path_style=true&region=" + s3test.Region +
		"&object_lock=governance&retain=1d&sse=aws:kms&kms_key_id=test-key-1"
	c, err := s3.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := s3.ParseURL(c.Location()); err != nil || back.ObjectLock != "GOVERNANCE" || back.Retain != 24*time.Hour || back.SSEKMSKeyID != "test-key-1" {
		t.Fatalf("location %q", c.Location())
	}
	c.PartSize = 5 << 20
	b, err := s3.New(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !storage.Locks(b) {
		t.Fatal("Locks() = false")
	}
	ctx := t.Context()
	before := time.Now()
	if _, err := b.Put(ctx, "small", bytes.NewReader([]byte("data"))); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "large", bytes.NewReader(bytes.Repeat([]byte("x"), 11<<20))); err != nil {
		t.Fatal(err)
	}
	oi, err := b.PutIf(ctx, "lease", []byte("1"), storage.Condition{IfAbsent: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutIf(ctx, "lease", []byte("2"), storage.Condition{IfMatch: oi.ETag}); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	reqs := rec.reqs
	rec.mu.Unlock()
	if len(reqs) != 4 {
		t.Fatalf("%d object-creating requests, want 4 (small, large's CreateMultipartUpload, lease twice)", len(reqs))
	}
	for i, r := range reqs {
		h := r.Header
		if h.Get("X-Amz-Server-Side-Encryption") != "aws:kms" || h.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != "test-key-1" {
			t.Errorf("request %d %s %s: SSE headers %q %q", i, r.Method, r.URL, h.Get("X-Amz-Server-Side-Encryption"), h.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"))
		}
		mode, until := h.Get("X-Amz-Object-Lock-Mode"), h.Get("X-Amz-Object-Lock-Retain-Until-Date")
		if i >= 2 { // the lease: state updated in place, never locked
			if mode != "" || until != "" {
				t.Errorf("lease write %d carries a lock: %q %q", i, mode, until)
			}
			continue
		}
		u, err := time.Parse(time.RFC3339, until)
		if mode != "GOVERNANCE" || err != nil || u.Before(before.Add(23*time.Hour)) || u.After(time.Now().Add(25*time.Hour)) {
			t.Errorf("request %d %s %s: lock %q until %q", i, r.Method, r.URL, mode, until)
		}
	}
	got, err := storage.LockedUntil(ctx, b, "small")
	if err != nil {
		t.Fatal(err)
	}
	if got.IsZero() {
		t.Skip("versitygw did not report the retention back (HeadObject has no retain-until date); the headers were sent")
	}
	if got.Before(before.Add(23 * time.Hour)) {
		t.Errorf("LockedUntil = %v", got)
	}
}

func TestParseURL_LockErrors(t *testing.T) {
	for _, raw := range []string{
		"s3://b/p?object_lock=compliance",
		"s3://b/p?retain=30d",
		"s3://b/p?object_lock=forever&retain=1d",
		"s3://b/p?object_lock=governance&retain=-1d",
		"s3://b/p?kms_key_id=k",
	} {
		if _, err := s3.ParseURL(raw); err == nil {
			t.Errorf("%s: no error", raw)
		}
	}
}
