package gcs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"

	"redback/internal/storage"
	"redback/internal/storage/gcs"
	"redback/internal/storage/gcs/gcstest"
)

// canary is the access token the tests' token sources hand out: it must
// never appear in an error.
const canary = "ya29.canary-token-redback-7c1d"

// roundTripper adapts a function to http.RoundTripper.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// client returns an HTTP client whose requests pass through hook (nil:
// none) on a transport of its own, closed when the test ends.
func client(t *testing.T, hook func(*http.Request)) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		if hook != nil {
			hook(r)
		}
		return tr.RoundTrip(r)
	})}
}

// emulated returns a backend on a fresh fake-gcs-server bucket, with cfg's
// tuning fields.
func emulated(t *testing.T, cfg gcs.Config) *gcs.Backend {
	t.Helper()
	srv := gcstest.StartServer(t)
	srv.SetEnv(t)
	c, err := gcs.ParseURL(srv.URL("p"))
	if err != nil {
		t.Fatal(err)
	}
	c.ChunkSize, c.PageSize, c.HTTPClient = cfg.ChunkSize, cfg.PageSize, cfg.HTTPClient
	b, err := gcs.New(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func byteAt(i int64) byte { return byte(i*7 + i>>9) }

// source delivers size deterministic bytes (byteAt) and counts them; it
// has no method but Read.
type source struct {
	n, size atomic.Int64
}

func newSource(size int64) *source {
	s := &source{}
	s.size.Store(size)
	return s
}

func (s *source) Read(p []byte) (int, error) {
	n, size := s.n.Load(), s.size.Load()
	if n >= size {
		return 0, io.EOF
	}
	k := min(int64(len(p)), size-n)
	for i := range p[:k] {
		p[i] = byteAt(n + int64(i))
	}
	s.n.Add(k)
	return int(k), nil
}

func checkContent(t *testing.T, b storage.Backend, key string, size int64) {
	t.Helper()
	rc, err := b.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	p, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if int64(len(p)) != size {
		t.Fatalf("read %s: %d bytes, want %d", key, len(p), size)
	}
	for i := range p {
		if p[i] != byteAt(int64(i)) {
			t.Fatalf("read %s: byte %d differs", key, i)
		}
	}
}

var contentRange = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+|\*)$`)

// A Put larger than a chunk is a resumable upload sent chunk by chunk:
// the source is never read more than one chunk ahead of what was sent,
// and the upload's memory does not grow with the object.
func TestBackend_ResumableChunks(t *testing.T) {
	const chunk = 256 << 10
	var src atomic.Pointer[source]
	var mu sync.Mutex
	var ranges []string
	var ahead []string
	hc := client(t, func(r *http.Request) {
		m := contentRange.FindStringSubmatch(r.Header.Get("Content-Range"))
		if r.Method != http.MethodPut || r.Header.Get("Content-Range") == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		ranges = append(ranges, r.Header.Get("Content-Range"))
		if m != nil {
			end, _ := strconv.ParseInt(m[2], 10, 64)
			if read := src.Load().n.Load(); read > end+1 {
				ahead = append(ahead, fmt.Sprintf("%s sent after %d bytes were read", m[0], read))
			}
		}
	})
	b := emulated(t, gcs.Config{ChunkSize: chunk, HTTPClient: hc})
	for _, tc := range []struct {
		size   int64
		chunks int // PUT requests
		last   string
	}{
		{3*chunk + 1000, 4, fmt.Sprintf("bytes %d-%d/%d", 3*chunk, 3*chunk+999, 3*chunk+1000)},
		{3 * chunk, 4, fmt.Sprintf("bytes */%d", 3*chunk)}, // the end is known only after the third chunk
		{chunk - 1, 0, ""}, // one request
	} {
		ranges, ahead = nil, nil
		key := fmt.Sprintf("big-%d", tc.size)
		src.Store(newSource(tc.size))
		fi, err := b.Put(t.Context(), key, src.Load())
		if err != nil {
			t.Fatalf("Put %d bytes: %v", tc.size, err)
		}
		if fi.Size != tc.size || fi.ETag == "" {
			t.Errorf("Put %d bytes: info %+v", tc.size, fi)
		}
		mu.Lock()
		if len(ranges) != tc.chunks || (tc.chunks > 0 && ranges[len(ranges)-1] != tc.last) {
			t.Errorf("Put %d bytes: chunk requests %q, want %d ending with %q", tc.size, ranges, tc.chunks, tc.last)
		}
		if len(ahead) > 0 {
			t.Errorf("Put %d bytes read the source more than a chunk ahead: %q", tc.size, ahead)
		}
		mu.Unlock()
		checkContent(t, b, key, tc.size)
	}

	// 32 chunks cost far less than the object.
	const size = 32 * chunk
	src.Store(newSource(size))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := b.Put(t.Context(), "alloc", src.Load()); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > size/2 {
		t.Errorf("a Put of %d bytes in %d-byte chunks allocated %d bytes", size, chunk, d)
	}
	checkContent(t, b, "alloc", size)
}

// List follows nextPageToken through every page.
func TestBackend_ListPages(t *testing.T) {
	var lists atomic.Int64
	hc := client(t, func(r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/o") {
			lists.Add(1)
		}
	})
	b := emulated(t, gcs.Config{PageSize: 2, HTTPClient: hc})
	var want []string
	for i := range 7 {
		key := fmt.Sprintf("k/%02d", i)
		want = append(want, key)
		if _, err := b.Put(t.Context(), key, strings.NewReader(key)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := b.List(t.Context(), "k/", func(fi storage.ObjectInfo) error {
		if fi.Size != int64(len(fi.Key)) || fi.ETag == "" || fi.ModTime.IsZero() {
			t.Errorf("List: %+v", fi)
		}
		got = append(got, fi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("List = %q, want %q", got, want)
	}
	if n := lists.Load(); n < 4 {
		t.Errorf("List of 7 objects at 2 a page sent %d requests, want 4", n)
	}
}

// A byte changed on its way to the store is caught: by the service
// (the CRC32C declared with a one-request upload) or by redback (the
// CRC32C of the object a resumable upload finalized). Nothing damaged
// stays visible.
func TestBackend_DamageInFlight(t *testing.T) {
	const chunk = 256 << 10
	var flips atomic.Int64
	var flip atomic.Bool
	hc := client(t, func(r *http.Request) {
		if !flip.Load() || r.Body == nil || r.ContentLength < 1000 {
			return
		}
		p, _ := io.ReadAll(r.Body)
		p[len(p)/2] ^= 0x20
		r.Body = io.NopCloser(bytes.NewReader(p))
		flip.Store(false) // once
		flips.Add(1)
	})
	b := emulated(t, gcs.Config{ChunkSize: chunk, HTTPClient: hc})

	// One request: the emulator refuses it, Put sends it again.
	flip.Store(true)
	if _, err := b.Put(t.Context(), "small", newSource(4000)); err != nil {
		t.Fatalf("Put after a damaged request: %v", err)
	}
	if flips.Load() != 1 {
		t.Fatalf("%d requests damaged, want 1", flips.Load())
	}
	checkContent(t, b, "small", 4000)

	// A resumable upload: the damaged chunk cannot be sent again (the
	// source is a stream); the Put fails as transient and leaves nothing.
	flip.Store(true)
	_, err := b.Put(t.Context(), "big", newSource(2*chunk+10))
	if err == nil || !storage.IsTransient(err) || !strings.Contains(err.Error(), "CRC32C") {
		t.Fatalf("Put with a damaged chunk: %v, want a transient CRC32C error", err)
	}
	if _, err := b.Stat(t.Context(), "big"); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("Stat after a damaged upload: %v, want ErrNotExist", err)
	}
}

// fakeAPI is a loopback server for what the emulator cannot do: answer
// errors, serve damaged or unranged bytes, fail chunks. It checks the
// token of every request.
type fakeAPI struct {
	*httptest.Server
	t       *testing.T
	handler atomic.Pointer[http.HandlerFunc]
	badAuth atomic.Int64
}

func startAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+canary && r.URL.Path != "/token" {
			f.badAuth.Add(1)
		}
		(*f.handler.Load())(w, r)
	}))
	t.Cleanup(func() {
		f.Close()
		if n := f.badAuth.Load(); n > 0 {
			t.Errorf("%d requests without the token", n)
		}
	})
	return f
}

func (f *fakeAPI) handle(h http.HandlerFunc) { f.handler.Store(&h) }

// backend returns a backend on the server with the canary token.
func (f *fakeAPI) backend(chunk int) *gcs.Backend {
	b, err := gcs.New(f.t.Context(), gcs.Config{Bucket: "bkt", Prefix: "p", ChunkSize: chunk, Endpoint: f.URL,
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: canary}), HTTPClient: client(f.t, nil)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = b.Close() })
	return b
}

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"errors":[{"message":%q}]}}`, code, msg, msg)
}

func noSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), canary) {
		t.Errorf("error shows the token: %v", err)
	}
}

// The service's statuses map to the storage errors; the message names the
// operation, the key, the status and the service's words, never the token.
func TestBackend_Errors(t *testing.T) {
	f := startAPI(t)
	b := f.backend(0)
	ctx := t.Context()
	for _, tc := range []struct {
		code      int
		msg       string
		transient bool
		is        error
		want      string
	}{
		{503, "backend overloaded", true, nil, "HTTP 503 Service Unavailable: backend overloaded"},
		{500, "internal", true, nil, "HTTP 500"},
		{429, "rate limit", true, nil, "HTTP 429"},
		{408, "timeout", true, nil, "HTTP 408"},
		{404, "No such object: bkt/p/k", false, storage.ErrNotExist, "stat k"},
		{404, "The specified bucket does not exist.", false, nil, `bucket "bkt" does not exist`},
		{403, "redback@p.iam.gserviceaccount.com does not have storage.objects.get access", false, nil, "access denied"},
		{401, "Invalid Credentials", false, nil, "access denied"},
		{400, "Invalid argument", false, nil, "HTTP 400"},
	} {
		f.handle(func(w http.ResponseWriter, r *http.Request) { apiError(w, tc.code, tc.msg) })
		_, err := b.Stat(ctx, "k")
		noSecret(t, err)
		switch {
		case err == nil:
			t.Errorf("%d: Stat succeeded", tc.code)
		case storage.IsTransient(err) != tc.transient:
			t.Errorf("%d: Stat error %v: transient %v, want %v", tc.code, err, !tc.transient, tc.transient)
		case tc.is != nil && !errors.Is(err, tc.is):
			t.Errorf("%d: Stat error %v, want %v", tc.code, err, tc.is)
		case tc.is == nil && errors.Is(err, storage.ErrNotExist):
			t.Errorf("%d: Stat error %v is ErrNotExist", tc.code, err)
		case !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "stat k"):
			t.Errorf("%d: Stat error %q, want it to name %q and the key", tc.code, err, tc.want)
		}
	}

	// A body that is not JSON: its start, on one line.
	f.handle(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream\nconnect error", http.StatusBadGateway)
	})
	if _, err := b.Get(ctx, "k", 0, -1); !storage.IsTransient(err) || !strings.Contains(err.Error(), "HTTP 502 Bad Gateway: upstream connect error") {
		t.Errorf("Get with a text error: %v", err)
	}

	// Preconditions: 412 on PutIf.
	f.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ifGenerationMatch") != "0" {
			t.Errorf("PutIf IfAbsent sent ifGenerationMatch=%q", r.URL.Query().Get("ifGenerationMatch"))
		}
		apiError(w, http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold.")
	})
	if _, err := b.PutIf(ctx, "lease", []byte("x"), storage.Condition{IfAbsent: true}); !errors.Is(err, storage.ErrPrecondition) {
		t.Errorf("PutIf on 412: %v, want ErrPrecondition", err)
	}

	// Delete of a missing object is fine; List of a missing bucket is not.
	f.handle(func(w http.ResponseWriter, r *http.Request) { apiError(w, http.StatusNotFound, "Not Found") })
	if err := b.Delete(ctx, "k"); err != nil {
		t.Errorf("Delete on 404: %v", err)
	}
	if err := b.List(ctx, "", func(storage.ObjectInfo) error { return nil }); err == nil || errors.Is(err, storage.ErrNotExist) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("List on 404: %v, want a missing bucket", err)
	}

	// A transient failure of a Put's one request is sent again.
	var puts atomic.Int64
	f.handle(func(w http.ResponseWriter, r *http.Request) {
		if puts.Add(1) <= 2 {
			apiError(w, http.StatusServiceUnavailable, "try again")
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, `{"name":"p/k","size":"5","generation":"42","updated":"2026-12-07T21:00:00Z"}`)
	})
	if fi, err := b.Put(ctx, "k", strings.NewReader("hello")); err != nil || fi.ETag != "42" || puts.Load() != 3 {
		t.Errorf("Put after two 503s: %+v, %v after %d requests", fi, err, puts.Load())
	}

	// A closed port: a connection error, transient.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	closed, err := gcs.New(ctx, gcs.Config{Bucket: "bkt", Endpoint: "http://" + addr,
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: canary}), HTTPClient: client(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = closed.Stat(ctx, "k")
	noSecret(t, err)
	if !storage.IsTransient(err) || !strings.Contains(err.Error(), "stat k") {
		t.Errorf("Stat on a closed port: %v, want a transient error", err)
	}
}

func crcHeader(p []byte) string {
	c := crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli))
	return "crc32c=" + base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, c)) + ",md5=AAAA"
}

// A whole read is checked against the stored CRC32C (a mismatch is a
// *storage.CorruptError); a ranged read is not, and a server that ignores
// Range still yields the range.
func TestBackend_ReadChecks(t *testing.T) {
	f := startAPI(t)
	b := f.backend(0)
	content := []byte("hello, redback world")
	damaged := bytes.Clone(content)
	damaged[3] ^= 1
	var honourRange atomic.Bool
	f.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("alt") != "media" || !strings.HasSuffix(r.URL.EscapedPath(), "/b/bkt/o/p%2Fk") {
			apiError(w, http.StatusBadRequest, "unexpected request "+r.URL.Path)
			return
		}
		w.Header().Set("X-Goog-Hash", crcHeader(content))
		if rng := r.Header.Get("Range"); rng != "" && honourRange.Load() {
			var lo, hi int
			if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &lo, &hi); err != nil {
				t.Errorf("Range %q", rng)
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", lo, hi, len(damaged)))
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(damaged[lo : hi+1])
			return
		}
		_, _ = w.Write(damaged)
	})
	read := func(off, length int64) ([]byte, error) {
		rc, err := b.Get(t.Context(), "k", off, length)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	_, err := read(0, -1)
	var ce *storage.CorruptError
	if !errors.As(err, &ce) || ce.Key != "k" || storage.IsTransient(err) {
		t.Errorf("whole read of damaged bytes: %v, want a *storage.CorruptError for k", err)
	}
	for _, honour := range []bool{true, false} {
		honourRange.Store(honour)
		if p, err := read(7, 7); err != nil || string(p) != "redback" {
			t.Errorf("ranged read (server honours Range: %v) = %q, %v; want %q", honour, p, err, "redback")
		}
	}
	honourRange.Store(false)
	if p, err := read(15, -1); err != nil || string(p) != "world" {
		t.Errorf("read from offset 15 (Range ignored) = %q, %v", p, err)
	}
}

// resumableAPI serves the resumable upload protocol and fails chunks as
// fail says: keep is how many of the chunk's bytes it keeps, status the
// answer (0: the connection is dropped).
type resumableAPI struct {
	mu        sync.Mutex
	data      []byte
	chunks    int
	queries   int
	cancelled bool
	hash      string
	fail      func(n int) (keep, status int, ok bool)
}

func (s *resumableAPI) serve(t *testing.T, base string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Query().Get("uploadType") == "resumable":
			if r.URL.Query().Get("name") != "p/big" {
				t.Errorf("session for %q", r.URL.Query().Get("name"))
			}
			w.Header().Set("Location", base+"/upload/storage/v1/b/bkt/o?uploadType=resumable&upload_id=s1")
			return
		case r.Method == http.MethodDelete:
			s.cancelled = true
			w.WriteHeader(499)
			return
		case r.Method != http.MethodPut || r.URL.Query().Get("upload_id") != "s1":
			apiError(w, http.StatusBadRequest, "unexpected request")
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		cr := r.Header.Get("Content-Range")
		total := -1
		if i := strings.LastIndexByte(cr, '/'); i >= 0 && cr[i+1:] != "*" {
			total, _ = strconv.Atoi(cr[i+1:])
		}
		switch m := contentRange.FindStringSubmatch(cr); {
		case cr == "bytes */*":
			s.queries++
		case m != nil:
			if lo, _ := strconv.Atoi(m[1]); lo != len(s.data) {
				apiError(w, http.StatusBadRequest, fmt.Sprintf("chunk at %d, the session has %d", lo, len(s.data)))
				return
			}
			s.chunks++
			if keep, st, ok := s.fail(s.chunks); ok {
				s.data = append(s.data, body[:keep]...)
				if st == 0 {
					panic(http.ErrAbortHandler) // drop the connection
				}
				apiError(w, st, "injected")
				return
			}
			s.data = append(s.data, body...)
		case strings.HasPrefix(cr, "bytes */"):
		default:
			apiError(w, http.StatusBadRequest, "Content-Range "+cr)
			return
		}
		if total < 0 || len(s.data) < total {
			if len(s.data) > 0 {
				w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", len(s.data)-1))
			}
			w.WriteHeader(http.StatusPermanentRedirect)
			return
		}
		s.hash = r.Header.Get("X-Goog-Hash")
		c := crc32.Checksum(s.data, crc32.MakeTable(crc32.Castagnoli))
		fmt.Fprintf(w, `{"name":"p/big","size":"%d","generation":"7","updated":"2026-12-07T21:00:00Z","crc32c":%q}`,
			len(s.data), base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, c)))
	}
}

// Chunks that fail transiently are resumed from what the session kept
// (asked with "bytes */*"); a permanent failure or a failing source
// cancels the session.
func TestBackend_ResumableRetry(t *testing.T) {
	const chunk = 512 << 10
	f := startAPI(t)
	b := f.backend(chunk)
	const size = 3*chunk + 77

	s := &resumableAPI{fail: func(n int) (int, int, bool) {
		switch n {
		case 2:
			return 256 << 10, http.StatusServiceUnavailable, true // keeps half, then fails
		case 4:
			return 0, 0, true // the connection drops
		}
		return 0, 0, false
	}}
	f.handle(s.serve(t, f.URL))
	fi, err := b.Put(t.Context(), "big", newSource(size))
	noSecret(t, err)
	if err != nil || fi.Size != size || fi.ETag != "7" {
		t.Fatalf("Put with failing chunks: %+v, %v", fi, err)
	}
	s.mu.Lock()
	if len(s.data) != size || s.queries != 2 || s.cancelled {
		t.Errorf("server has %d bytes after %d status queries (cancelled %v), want %d after 2", len(s.data), s.queries, s.cancelled, size)
	}
	for i := range s.data {
		if s.data[i] != byteAt(int64(i)) {
			t.Fatalf("byte %d differs", i)
		}
	}
	if want := crcHeader(s.data); !strings.HasPrefix(want, s.hash+",") {
		t.Errorf("final chunk's X-Goog-Hash %q, want %q", s.hash, strings.TrimSuffix(want, ",md5=AAAA"))
	}
	s.mu.Unlock()

	// A permanent failure: the session is cancelled.
	s = &resumableAPI{fail: func(n int) (int, int, bool) { return 0, http.StatusBadRequest, n == 2 }}
	f.handle(s.serve(t, f.URL))
	if _, err := b.Put(t.Context(), "big", newSource(size)); err == nil || storage.IsTransient(err) || !strings.Contains(err.Error(), "offset 524288") {
		t.Errorf("Put with a refused chunk: %v, want a permanent error naming the chunk", err)
	}
	if !s.cancelled {
		t.Error("the session of a failed upload was not cancelled")
	}

	// A session the service forgot (expired): said so, not a missing
	// object or bucket.
	s = &resumableAPI{fail: func(n int) (int, int, bool) { return 0, http.StatusNotFound, n == 2 }}
	f.handle(s.serve(t, f.URL))
	_, err = b.Put(t.Context(), "big", newSource(size))
	if err == nil || errors.Is(err, storage.ErrNotExist) || storage.IsTransient(err) || !strings.Contains(err.Error(), "session ended") || strings.Contains(err.Error(), "bucket") {
		t.Errorf("Put into an ended session: %v", err)
	}

	// The source fails after two chunks: cancelled too.
	s = &resumableAPI{fail: func(int) (int, int, bool) { return 0, 0, false }}
	f.handle(s.serve(t, f.URL))
	_, err = b.Put(t.Context(), "big", io.MultiReader(io.LimitReader(newSource(size), 2*chunk+5), iotestErr{}))
	if err == nil || !s.cancelled || !strings.Contains(err.Error(), "source broke") {
		t.Errorf("Put with a failing source: %v (cancelled %v)", err, s.cancelled)
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("source broke") }

// GOOGLE_APPLICATION_CREDENTIALS naming a service account key: the
// token is fetched with the devstorage read_write scope from the key's
// token_uri and sent with every request; neither the token nor the key
// appears in an error.
func TestADC_ServiceAccountFile(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	f := startAPI(t)
	var scope atomic.Value
	f.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			parts := strings.Split(r.FormValue("assertion"), ".")
			var claims struct {
				Scope string `json:"scope"`
			}
			if len(parts) == 3 {
				p, _ := base64.RawURLEncoding.DecodeString(parts[1])
				_ = json.Unmarshal(p, &claims)
			}
			scope.Store(claims.Scope)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, canary)
			return
		}
		apiError(w, http.StatusForbidden, "redback@p.iam.gserviceaccount.com does not have storage.objects.get access")
	})
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "p", "private_key_id": "k1", "private_key": pemKey,
		"client_email": "redback@p.iam.gserviceaccount.com", "client_id": "1", "token_uri": f.URL + "/token",
	})
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
	// The token source keeps working after the context that found it
	// ends.
	ctx, cancel := context.WithCancel(t.Context())
	ts, err := gcs.ADC(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	b, err := gcs.New(t.Context(), gcs.Config{Bucket: "bkt", Endpoint: f.URL, TokenSource: ts, HTTPClient: client(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.Stat(t.Context(), "k")
	if err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("Stat: %v, want access denied", err)
	}
	if s, _ := scope.Load().(string); s != gcs.Scope {
		t.Errorf("token asked for scope %q, want %q", s, gcs.Scope)
	}
	noSecret(t, err)
	if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), pemKey[40:80]) {
		t.Errorf("error shows the key: %v", err)
	}
}
