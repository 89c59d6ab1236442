package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"redback/internal/redistest"
	"redback/internal/storage/s3/s3test"
)

// Modes of faultyS3.
const (
	s3OK       = iota
	s3Flaky    // every third request answers 503 SlowDown
	s3Slow     // every request waits 500 ms before it is forwarded
	s3DataDown // every request for an object under data/ answers 503
	s3Delay    // every request waits faultyS3.delay before it is forwarded
)

// faultyS3 is a reverse proxy on loopback in front of an S3 server that
// injects 5xx answers and slow responses.
type faultyS3 struct {
	mode             atomic.Int32
	requests, faults atomic.Int64
	delay            atomic.Int64 // nanoseconds, for s3Delay
	addr             string
}

func startFaultyS3(t *testing.T, endpoint string) *faultyS3 {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyS3{}
	rp := httputil.NewSingleHostReverseProxy(u)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.requests.Add(1)
		fail := false
		switch f.mode.Load() {
		case s3Flaky:
			fail = n%3 == 0
		case s3Slow:
			time.Sleep(500 * time.Millisecond)
		case s3DataDown:
			fail = strings.Contains(r.URL.Path, "/data/")
		case s3Delay:
			time.Sleep(time.Duration(f.delay.Load()))
		}
		if fail {
			f.faults.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Close() })
	f.addr = ln.Addr().String()
	return f
}

// populateRandom writes n keys of 100 random hex characters (about half
// of it survives compression).
func populateRandom(t *testing.T, src *redistest.Server, n int) {
	t.Helper()
	ctx := t.Context()
	p := src.Client().Pipeline()
	buf := make([]byte, 50)
	for i := range n {
		_, _ = rand.Read(buf)
		p.Set(ctx, fmt.Sprintf("r:%d", i), hex.EncodeToString(buf), 0)
		if i%1000 == 999 {
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// restoreEqual restores the newest point of repo (args: --latest or --at
// latest) into a new server and compares its digest with want.
func restoreEqual(t *testing.T, repo, want string, args ...string) {
	t.Helper()
	dst := redistest.Start(t)
	all := append([]string{"restore", "--repo", repo, "--to-redis", dst.URL()}, args...)
	if code, out, errs := runCLI(t, all...); code != ExitOK {
		t.Fatalf("%s: exit %d\n%s%s", strings.Join(all, " "), code, out, errs)
	}
	if got := dst.Digest(t.Context()); got != want {
		t.Fatalf("restored digest %s, want %s", got, want)
	}
}

// TestReliability_S3Faults: an S3 server (versitygw) behind a proxy that
// answers 503 SlowDown to every third request, or delays every request by
// 500 ms: snapshot and ship retry and succeed, and the restores are
// digest-equal. When every request for a data object fails, snapshot
// gives up with exit 1 naming the object, and nothing partial is visible
// (no manifest, no incomplete multipart upload).
func TestReliability_S3Faults(t *testing.T) {
	ctx := t.Context()
	srv := s3test.StartServer(t)
	s3test.SetEnv(t, srv.AccessKey, srv.SecretKey)
	fp := startFaultyS3(t, srv.Endpoint)
	via := *srv
	via.Endpoint = "http://" + fp.addr
	repo := via.URL("faulty")
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	populateRandom(t, src, 5000)

	for _, m := range []struct {
		name string
		mode int32
	}{{"every third request 503", s3Flaky}, {"every request 500 ms late", s3Slow}} {
		fp.mode.Store(m.mode)
		before := fp.faults.Load()
		began := time.Now()
		if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
			t.Fatalf("%s: snapshot: exit %d\n%s%s", m.name, code, out, errs)
		}
		t.Logf("%s: snapshot ok in %s, %d injected 503s", m.name, time.Since(began).Round(100*time.Millisecond), fp.faults.Load()-before)
	}
	fp.mode.Store(s3OK)
	restoreEqual(t, repo, src.Digest(ctx), "--latest")
	snaps := len(listRepo(t, repo).Snapshots)

	// An outage of the data objects: exit 1 (a failure, not damage),
	// naming the object; nothing partial becomes visible.
	fp.mode.Store(s3DataDown)
	began := time.Now()
	code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo)
	took := time.Since(began).Round(100 * time.Millisecond)
	fp.mode.Store(s3OK)
	if code != ExitFailure || !strings.Contains(errs, "data/snapshots/") || !strings.Contains(errs, "503") {
		t.Fatalf("snapshot during a data outage: exit %d, want 1 naming the object and the 503\n%s%s", code, out, errs)
	}
	t.Logf("data outage: snapshot exit 1 after %s: %s", took, lastLine(errs))
	if n := len(listRepo(t, repo).Snapshots); n != snaps {
		t.Fatalf("the failed snapshot is visible: %d snapshots, want %d", n, snaps)
	}
	if up, err := srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(srv.Bucket)}); err != nil || len(up.Uploads) != 0 {
		t.Fatalf("incomplete multipart uploads left: %v %v", up, err)
	}

	// Shipping through flaky and slow S3: durable again once it clears.
	ld := startWriteLoad(t, src, uint64(time.Now().UnixNano()))
	r := startShip(t, src, repo, "--ack", "durable", "--interval", "200ms")
	if !ld.durable(60 * time.Second) {
		t.Fatalf("ship did not store the writes in 60 s:\n%s", r.stderr.String())
	}
	for _, mode := range []int32{s3Flaky, s3Slow, s3DataDown} {
		fp.mode.Store(mode)
		time.Sleep(3 * time.Second)
		fp.mode.Store(s3OK)
		began := time.Now()
		if !ld.durable(90 * time.Second) {
			t.Fatalf("mode %d: not durable within 90 s after S3 recovered:\n%s", mode, r.stderr.String())
		}
		t.Logf("ship, S3 mode %d for 3 s: durable again %s after it cleared", mode, time.Since(began).Round(100*time.Millisecond))
	}
	ld.stop()
	if !ld.durable(60 * time.Second) {
		t.Fatal("not durable at the quiet point")
	}
	if code := r.stop(); code != ExitOK {
		t.Fatalf("ship: exit %d\n%s", code, r.stderr.String())
	}
	// (Short outages are absorbed by the retries of each write, below
	// the shipper's own loop: nothing to log then.)
	if code, out, errs := runCLI(t, "verify", "--repo", repo); code != ExitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	restoreEqual(t, repo, src.Digest(ctx), "--at", "latest")
	t.Logf("S3 faults: %d requests, %d answered 503; ship: %d writes, %d acknowledged", fp.requests.Load(), fp.faults.Load(), ld.writes.Load(), ld.ackedWrites.Load())
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// mountTmpfs mounts a tmpfs of size (mount's -o size=) on a new temp dir
// for the test, or skips the test when mounting is not allowed (not root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file into dir until the filesystem is full, then frees
// leave bytes of it, and returns its path (remove it to free the space).
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for i := 0; i < 1<<16; i++ {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			if fi, err := f.Stat(); err != nil || f.Truncate(max(0, fi.Size()-leave)) != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatal("the filesystem never filled up")
	return ""
}

// TestReliability_FullDisk: a file repository on a small tmpfs (mounted by
// the test; skipped when it cannot mount one) that fills up. snapshot
// fails with exit 1 naming the object and "no space left on device", and
// leaves no partial object or temp file; once space returns it succeeds.
// ship keeps the data in its (memory) spool while the disk is full, logs
// the failure, and resumes when space returns: every write durable, no
// gap, restore digest-equal.
func TestReliability_FullDisk(t *testing.T) {
	ctx := t.Context()
	dir := mountTmpfs(t, "32m")
	repo := "file://" + filepath.Join(dir, "repo")
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	populateRandom(t, src, 20000) // ~1 MB stored

	if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
	}
	filler := fill(t, dir, 128<<10) // room for the lease, not for the data
	src.Client().Set(ctx, "changed", 1, 0)
	code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo)
	if code != ExitFailure || !strings.Contains(errs, "no space left on device") || !strings.Contains(errs, "data/snapshots/") {
		t.Fatalf("snapshot on a full disk: exit %d, want 1 naming the object and ENOSPC\n%s%s", code, out, errs)
	}
	t.Logf("full disk: snapshot exit 1: %s", lastLine(errs))
	if n := len(listRepo(t, repo).Snapshots); n != 1 {
		t.Fatalf("%d snapshots visible after the failed one, want 1", n)
	}
	filepath.Walk(filepath.Join(dir, "repo"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.Contains(filepath.Base(p), "tmp") {
			t.Errorf("a temp file is left: %s", p)
		}
		return nil
	})
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
		t.Fatalf("snapshot after space returned: exit %d\n%s%s", code, out, errs)
	}
	restoreEqual(t, repo, src.Digest(ctx), "--latest")

	// Shipping onto the full disk.
	ld := startWriteLoad(t, src, uint64(time.Now().UnixNano()))
	r := startShip(t, src, repo, "--ack", "durable", "--interval", "200ms")
	if !ld.durable(60 * time.Second) {
		t.Fatalf("ship did not store the writes in 60 s:\n%s", r.stderr.String())
	}
	filler = fill(t, dir, 0)
	for i := 0; i < 100 && !strings.Contains(r.stderr.String(), "no space left on device"); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(r.stderr.String(), "storage write failed; retrying") || !strings.Contains(r.stderr.String(), "no space left on device") {
		t.Fatalf("ship did not log the full disk:\n%s", r.stderr.String())
	}
	if ld.durable(time.Second) {
		t.Fatal("a write was acknowledged as durable while the disk was full")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if !ld.durable(60 * time.Second) {
		t.Fatalf("not durable within 60 s after space returned:\n%s", r.stderr.String())
	}
	t.Logf("ship on a full disk: durable again %s after space returned", time.Since(began).Round(100*time.Millisecond))
	if testing.Verbose() {
		t.Logf("ship log:\n%s", r.stderr.String())
	}
	ld.stop()
	if !ld.durable(60 * time.Second) {
		t.Fatal("not durable at the quiet point")
	}
	if code := r.stop(); code != ExitOK {
		t.Fatalf("ship: exit %d\n%s", code, r.stderr.String())
	}
	for _, w := range listRepo(t, repo).Generations {
		for _, g := range w.Gaps {
			t.Errorf("generation %s has a silent gap or overlap %+v", w.Generation, g)
		}
	}
	if code, out, errs := runCLI(t, "verify", "--repo", repo); code != ExitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	restoreEqual(t, repo, src.Digest(context.Background()), "--at", "latest")
}
