package cli

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"redback/internal/ops"
	"redback/internal/redistest"
	"redback/internal/storage/s3/s3test"
)

// TestCopy_KillNine: `redback copy` (this test binary run as redback, a
// process of its own) copies a repository of many objects (snapshots, a
// shipped log generation with its segments) from a folder to S3
// (versitygw, behind a proxy that delays every request so that the copy
// takes seconds), then from that S3 copy to another folder, and is killed
// with SIGKILL at a few points mid-copy: after about a quarter, half and
// three quarters of the objects. After every kill the target verifies
// (`redback verify`, exit 0: no manifest without its data, no object that
// is not whole) and no multipart upload is left behind; a rerun resumes (it
// copies only what is missing) and completes; the copy then verifies,
// lists what the source lists, and restores digest-equal, a snapshot and
// the newest point of the log.
func TestCopy_KillNine(t *testing.T) {
	ctx := t.Context()
	srv := s3test.StartServer(t)
	s3test.SetEnv(t, srv.AccessKey, srv.SecretKey)
	fp := startFaultyS3(t, srv.Endpoint)
	via := *srv
	via.Endpoint = "http://" + fp.addr
	dst := via.URL("copy")

	// The source repository: 20 snapshots and a shipped generation.
	src := redistest.Start(t)
	redistest.Populate(t, src, 200)
	repo := "file://" + t.TempDir()
	for i := range 20 {
		if err := src.Client().Set(ctx, fmt.Sprintf("round:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
			t.Fatalf("snapshot %d: exit %d\n%s%s", i, code, out, errs)
		}
	}
	r := startShip(t, src, repo, "--interval", "50ms")
	for round := range 10 {
		for i := range 20 {
			if err := src.Client().Set(ctx, fmt.Sprintf("shipped:%d:%d", round, i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		r.waitDurable()
	}
	if code := r.stop(); code != ExitOK {
		t.Fatalf("ship: exit %d\n%s", code, r.stderr.String())
	}
	want := src.Digest(ctx)
	srcList := listRepo(t, repo)
	s3Objects := func() int {
		n := 0
		p := s3.NewListObjectsV2Paginator(srv.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket), Prefix: aws.String("copy/")})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n += len(page.Contents)
		}
		return n
	}
	t.Run("folder to S3", func(t *testing.T) {
		killCopy(t, fp, repo, dst, s3Objects, want, srcList, func() {
			if up, err := srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(srv.Bucket)}); err != nil || len(up.Uploads) != 0 {
				t.Fatalf("multipart uploads left after a kill: %v %v", up, err)
			}
		})
	})
	// The other way: from S3 (the delayed one, now a whole copy) into a
	// folder, whose objects are written to a temp file and renamed.
	dir := t.TempDir()
	fileObjects := func() int {
		n := 0
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".redback-") {
				n++
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Run("S3 to folder", func(t *testing.T) {
		killCopy(t, fp, dst, "file://"+dir, fileObjects, want, srcList, func() {})
		// What the kills left: staging files, which prune removes once old
		// (backdated here past the hour floor), reporting each.
		var temps []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".redback-tmp-") {
				temps = append(temps, p)
			}
			return err
		})
		old := time.Now().Add(-2 * time.Hour)
		for _, p := range temps {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
		code, out, errs := runCLI(t, "prune", "--repo", "file://"+dir, "--keep-within", "30d", "--uploads-older-than", "1h", "--json")
		var res struct {
			AbandonedTempFiles []ops.AbandonedUpload `json:"abandoned_temp_files"`
		}
		if err := json.Unmarshal([]byte(out), &res); code != ExitOK || err != nil || len(res.AbandonedTempFiles) != len(temps) {
			t.Fatalf("prune after the kills (%d staging files left): exit %d, %v\n%s%s", len(temps), code, err, out, errs)
		}
		for _, a := range res.AbandonedTempFiles {
			if !a.Aborted {
				t.Errorf("staging file %s not removed", a.Key)
			}
		}
		for _, p := range temps {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("staging file %s still there: %v", p, err)
			}
		}
		if code, out, errs := runCLI(t, "verify", "--repo", "file://"+dir); code != ExitOK || strings.Contains(out, ".redback-tmp-") {
			t.Fatalf("verify after prune: exit %d\n%s%s", code, out, errs)
		}
		t.Logf("prune removed %d staging files the kills left", len(temps))
	})
}

// killCopy copies from to to with a `redback copy` process killed by
// SIGKILL at a quarter, half and three quarters of the objects (objects
// counts them on the target), the S3 proxy fp delaying every request
// meanwhile; after each kill the target verifies and check passes; then a
// rerun copies exactly what is missing, the copy verifies, lists what the
// source lists (srcList), and restores digest-equal to want (the newest
// point of the log, and the newest snapshot).
func killCopy(t *testing.T, fp *faultyS3, from, to string, objects func() int, want string, srcList listOutput, check func()) {
	// How many objects a whole copy makes: a dry run's count.
	code, out, errs := runCLI(t, "copy", "--from", from, "--to", to, "--dry-run", "--json")
	if code != ExitOK {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	total := copiedObjects(t, out)
	if total < 50 {
		t.Fatalf("only %d objects to copy\n%s", total, out)
	}
	fp.delay.Store(int64(20 * time.Millisecond))
	fp.mode.Store(s3Delay)
	defer fp.mode.Store(s3OK)

	for _, frac := range []float64{0.25, 0.5, 0.75} {
		at := int(frac * float64(total))
		p := startRedback(t, "copy", "--from", from, "--to", to)
		reached := false
		for end := time.Now().Add(120 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if objects() >= at {
				reached = true
				break
			}
			if p.wait(0) >= 0 {
				break
			}
		}
		if !reached {
			t.Fatalf("copy ended or stalled before %d of %d objects (exit %d):\n%s", at, total, p.wait(0), p.out.String())
		}
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		p.wait(30 * time.Second)
		have := objects()
		if have >= total {
			t.Fatalf("the copy was complete (%d objects) before the kill at %d", have, at)
		}
		if code, out, errs := runCLI(t, "verify", "--repo", to); code != ExitOK {
			t.Fatalf("after a kill at %d of %d objects: verify exit %d\n%s%s", have, total, code, out, errs)
		}
		check()
		t.Logf("killed at %d of %d objects; the target verifies", have, total)
	}
	fp.mode.Store(s3OK)

	// The rerun copies only what is missing and completes.
	before := objects()
	code, out, errs = runCLI(t, "copy", "--from", from, "--to", to, "--json")
	if code != ExitOK {
		t.Fatalf("resumed copy: exit %d\n%s%s", code, out, errs)
	}
	if n := copiedObjects(t, out); n != total-before {
		t.Errorf("the resumed copy copied %d objects, %d were missing", n, total-before)
	}
	if code, out, errs := runCLI(t, "verify", "--repo", to); code != ExitOK {
		t.Fatalf("verify of the finished copy: exit %d\n%s%s", code, out, errs)
	}
	dstList := listRepo(t, to)
	if len(dstList.Snapshots) != len(srcList.Snapshots) || len(dstList.Generations) != len(srcList.Generations) {
		t.Fatalf("the copy lists %d snapshots and %d generations, the source %d and %d",
			len(dstList.Snapshots), len(dstList.Generations), len(srcList.Snapshots), len(srcList.Generations))
	}
	restoreEqual(t, to, want, "--at", "latest")
	// The newest snapshot too, equal to the same restored from the source.
	orig := redistest.Start(t)
	if code, out, errs := runCLI(t, "restore", "--repo", from, "--latest", "--to-redis", orig.URL()); code != ExitOK {
		t.Fatalf("restore of the newest snapshot from the source: exit %d\n%s%s", code, out, errs)
	}
	restoreEqual(t, to, orig.Digest(t.Context()), "--latest")
	if code, out, errs := runCLI(t, "copy", "--from", from, "--to", to, "--json"); code != ExitOK || copiedObjects(t, out) != 0 {
		t.Fatalf("a third run: exit %d, want nothing copied\n%s%s", code, out, errs)
	}
}

// copiedObjects is the "copied" count of `redback copy --json` output (what
// a dry run would copy).
func copiedObjects(t *testing.T, out string) int {
	t.Helper()
	var res struct {
		Copied int `json:"copied"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("copy --json: %v\n%s", err, out)
	}
	return res.Copied
}
