package cli

import (
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"redback/internal/redistest"
	"redback/internal/storage/s3/s3test"
)

// TestPrune_ObjectLock: in a repository written with S3 Object Lock,
// prune never tries to delete a locked snapshot; it keeps it and says when
// it becomes deletable.
func TestPrune_ObjectLock(t *testing.T) {
	srv := s3test.StartServer(t)
	s3test.SetEnv(t, srv.AccessKey, srv.SecretKey)
	bucket := "lock-" + strings.ToLower(srv.Bucket)
	if _, err := srv.Client().CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(bucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	repo := "s3://" + bucket + "/r?endpoint=" + url.QueryEscape(srv.Endpoint) + "&use_path_style=true&region=" + s3test.Region + "&object_lock=governance&retain=1d"
	src := redistest.Start(t)
	redistest.Populate(t, src, 20)
	for i := 0; i < 3; i++ {
		if code, _, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
			t.Fatalf("snapshot: exit %d\n%s", code, errs)
		}
	}
	count := func() int {
		out, err := srv.Client().ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, o := range out.Contents {
			if !strings.Contains(aws.ToString(o.Key), "lease") { // prune's own lease comes and goes
				n++
			}
		}
		return n
	}
	before := count()
	policy := []string{"--keep-hourly", "1", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0", "--keep-pitr", "0"}
	code, out, errs := runCLI(t, append([]string{"prune", "--repo", repo}, policy...)...)
	if code != ExitOK || strings.Count(out, "locked") != 2 || !strings.Contains(out, "deletable after") {
		t.Fatalf("prune: exit %d\n%s\n%s", code, out, errs)
	}
	if after := count(); after != before {
		t.Fatalf("%d objects before prune, %d after", before, after)
	}
}
