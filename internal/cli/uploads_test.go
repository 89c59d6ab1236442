package cli

import (
	"encoding/json"
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

// TestPrune_AbandonedMultipartUploads: incomplete multipart uploads under
// the repository (a writer killed mid-upload) are reported by
// `prune --dry-run` and aborted by prune when older than
// --uploads-older-than; a young one (an upload in flight) and one outside
// the repository's prefix are left alone. Against versitygw, whose upload
// start time is its upload directory's mtime (backdated here).
func TestPrune_AbandonedMultipartUploads(t *testing.T) {
	srv := s3test.StartServer(t)
	s3test.SetEnv(t, srv.AccessKey, srv.SecretKey)
	repo := srv.URL("r")
	src := redistest.Start(t)
	redistest.Populate(t, src, 50)
	if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
	}
	ctx := t.Context()
	c := srv.Client()
	var snapDir string
	filepath.Walk(filepath.Join(srv.Root, srv.Bucket), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.HasSuffix(p, ".rdb.zst") {
			rel, _ := filepath.Rel(filepath.Join(srv.Root, srv.Bucket), p)
			snapDir = filepath.ToSlash(filepath.Dir(rel))
		}
		return nil
	})
	if snapDir == "" {
		t.Fatal("no stored snapshot object under the server's root")
	}
	start := func(key string, age time.Duration) string {
		out, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(srv.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.UploadId)
		if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(srv.Bucket), Key: aws.String(key), UploadId: out.UploadId,
			PartNumber: aws.Int32(1), Body: strings.NewReader(strings.Repeat("x", 4096))}); err != nil {
			t.Fatal(err)
		}
		if age > 0 {
			old := time.Now().Add(-age)
			n := 0
			filepath.Walk(srv.Root, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.IsDir() && fi.Name() == id {
					n++
					return os.Chtimes(p, old, old)
				}
				return nil
			})
			if n != 1 {
				t.Fatalf("upload %s: %d directories named after it under the server's root", id, n)
			}
		}
		return id
	}
	abandoned := snapDir + "/20261207T000000Z-abandoned.rdb.zst"
	start(abandoned, 48*time.Hour)
	start(snapDir+"/20261207T000001Z-in-flight.rdb.zst", 0)
	start("elsewhere/not-the-repo.rdb.zst", 48*time.Hour)
	uploads := func() []string {
		out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(srv.Bucket)})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, u := range out.Uploads {
			keys = append(keys, aws.ToString(u.Key))
		}
		return keys
	}
	rel := abandoned[strings.Index(abandoned, "data/"):] // relative to the source, as prune names it

	code, out, errs := runCLI(t, "prune", "--repo", repo, "--dry-run")
	if code != ExitOK || !strings.Contains(out, "would abort an abandoned multipart upload of "+rel) || strings.Contains(out, "in-flight") || strings.Contains(out, "not-the-repo") {
		t.Fatalf("prune --dry-run: exit %d (want %s)\n%s%s", code, rel, out, errs)
	}
	if n := len(uploads()); n != 3 {
		t.Fatalf("--dry-run changed the uploads: %d left, want 3", n)
	}
	code, out, errs = runCLI(t, "prune", "--repo", repo, "--dry-run", "--json")
	var res struct {
		AbandonedUploads []ops.AbandonedUpload `json:"abandoned_uploads"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != ExitOK || err != nil || len(res.AbandonedUploads) != 1 ||
		res.AbandonedUploads[0].Key != rel || res.AbandonedUploads[0].Aborted || time.Since(res.AbandonedUploads[0].Initiated) < 47*time.Hour {
		t.Fatalf("prune --dry-run --json: exit %d, %v, %+v\n%s%s", code, err, res, out, errs)
	}

	code, out, errs = runCLI(t, "prune", "--repo", repo)
	if code != ExitOK || !strings.Contains(out, "aborted an abandoned multipart upload of "+rel) {
		t.Fatalf("prune: exit %d\n%s%s", code, out, errs)
	}
	left := strings.Join(uploads(), " ")
	if strings.Contains(left, "abandoned") || !strings.Contains(left, "in-flight") || !strings.Contains(left, "not-the-repo") {
		t.Fatalf("uploads left after prune: %s", left)
	}
	if code, out, errs := runCLI(t, "prune", "--repo", repo, "--uploads-older-than", "soon"); code != ExitUsage {
		t.Fatalf("--uploads-older-than soon: exit %d, want 2\n%s%s", code, out, errs)
	}
	// The snapshot is untouched and still verifies.
	if code, out, errs := runCLI(t, "verify", "--repo", repo); code != ExitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
}
