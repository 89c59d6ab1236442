package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/storage"
	"redback/internal/storage/file"
	"redback/internal/storage/mem"
)

func runRetentionCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// seedRepo writes n verified snapshots ending 0, 1, 2, ... hours ago and
// returns their ids, newest first.
func seedRepo(t *testing.T, b storage.Backend, n int) []string {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC()
	var ids []string
	for i := 0; i < n; i++ {
		at := now.Add(-time.Duration(i)*time.Hour - time.Minute)
		id := catalog.NewSnapshotID(at)
		s := &catalog.Snapshot{Format: catalog.FormatVersion, ID: id, StartTime: at, EndTime: at, Verified: true,
			Object: catalog.Object{Key: catalog.SnapshotDataKey(id, false), StoredBytes: 4}}
		if _, err := b.Put(ctx, s.Object.Key, strings.NewReader("data")); err != nil {
			t.Fatal(err)
		}
		if err := catalog.PutJSON(ctx, b, catalog.SnapshotManifestKey(id), s); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

var gfs2 = []string{"--keep-hourly", "2", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0", "--keep-pitr", "0"}

func TestPrune_DryRunThenDelete(t *testing.T) {
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := seedRepo(t, b, 5)

	code, out, errs := runRetentionCLI(t, append([]string{"prune", "--repo", dir, "--dry-run"}, gfs2...)...)
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, errs)
	}
	if strings.Count(out, "would delete") != 4 || !strings.Contains(out, "newest verified") || !strings.Contains(out, "hourly 2") {
		t.Fatalf("dry run output:\n%s", out)
	}
	if snaps, _, _ := catalog.ListSnapshots(t.Context(), b); len(snaps) != 5 {
		t.Fatalf("dry run deleted something: %d left", len(snaps))
	}

	code, out, errs = runRetentionCLI(t, append([]string{"prune", "--repo", dir, "--json"}, gfs2...)...)
	if code != 0 {
		t.Fatalf("prune: exit %d: %s", code, errs)
	}
	var res struct {
		Deleted   []string `json:"deleted"`
		Decisions []struct {
			ID      string   `json:"id"`
			Keep    bool     `json:"keep"`
			Reasons []string `json:"reasons"`
		} `json:"decisions"`
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(res.Deleted) != 3 || len(res.Decisions) != 5 || len(res.Errors) != 0 {
		t.Fatalf("json: %+v", res)
	}
	snaps, _, err := catalog.ListSnapshots(t.Context(), b)
	if err != nil || len(snaps) != 2 || snaps[0].ID != ids[0] || snaps[1].ID != ids[1] {
		t.Fatalf("left: %v %v", snaps, err)
	}
	for _, id := range ids[2:] {
		if _, err := b.Stat(t.Context(), catalog.SnapshotDataKey(id, false)); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("data of %s still there: %v", id, err)
		}
	}
	rec, err := catalog.ReadLease(t.Context(), b)
	if err != nil || !rec.Released {
		t.Fatalf("prune left its lease: %+v %v", rec, err)
	}
}

func TestPrune_RefusedWhileLeased(t *testing.T) {
	dir := t.TempDir()
	b, _ := file.New(dir)
	seedRepo(t, b, 3)
	if _, err := catalog.AcquireLease(t.Context(), b, "agent-host/42/abcd", time.Minute); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runRetentionCLI(t, "prune", "--repo", dir)
	if code != ExitFailure || !strings.Contains(errs, "agent-host/42/abcd") {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	// A dry run reads only: allowed.
	if code, _, errs := runRetentionCLI(t, "prune", "--repo", dir, "--dry-run"); code != 0 {
		t.Fatalf("dry run while leased: exit %d %s", code, errs)
	}
}

func TestPrune_Usage(t *testing.T) {
	for _, args := range [][]string{
		{"prune", "--repo", t.TempDir(), "--keep-daily", "-2"},
		{"prune", "--repo", t.TempDir(), "--keep-within", "soon"},
		{"prune"},
	} {
		if code, _, errs := runRetentionCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d (%s)", args, code, errs)
		}
	}
}

// failDeletes fails every data delete, as a bucket without delete
// permission on data/ would.
type failDeletes struct{ storage.Backend }

func (f failDeletes) Delete(ctx context.Context, key string) error {
	if strings.HasPrefix(key, catalog.SnapshotDataPrefix) {
		return errors.New("AccessDenied")
	}
	return f.Backend.Delete(ctx, key)
}

func TestPrune_FailedDeleteIsAnError(t *testing.T) {
	b := mem.New()
	seedRepo(t, b, 3)
	var out, errb bytes.Buffer
	e := &env{Stdio: Stdio{Out: &out, Err: &errb}, getenv: func(string) string { return "" }}
	e.log = slog.New(slog.NewTextHandler(&errb, nil))
	o := &pruneOpts{}
	err := prune(t.Context(), e, o, catalog.Policy{Hourly: 1}, 24*time.Hour, failDeletes{b}, "")
	if err == nil || ExitCode(err) != ExitFailure || !strings.Contains(err.Error(), "AccessDenied") || !strings.Contains(err.Error(), "2 delete(s) failed") {
		t.Fatalf("want failure naming AccessDenied, got %v", err)
	}
}

func TestKeep_MarkProtectsFromPrune(t *testing.T) {
	dir := t.TempDir()
	b, _ := file.New(dir)
	ids := seedRepo(t, b, 3)
	if code, out, errs := runRetentionCLI(t, "keep", "--repo", dir, ids[2]); code != 0 || !strings.Contains(out, "marked keep") {
		t.Fatalf("keep: exit %d %s %s", code, out, errs)
	}
	code, out, errs := runRetentionCLI(t, "prune", "--repo", dir, "--keep-hourly", "1", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0")
	if code != 0 {
		t.Fatalf("prune: %d %s", code, errs)
	}
	if !strings.Contains(out, ids[2]) || !strings.Contains(out, "marked keep") {
		t.Fatalf("prune output:\n%s", out)
	}
	snaps, _, _ := catalog.ListSnapshots(t.Context(), b)
	if len(snaps) != 2 || snaps[1].ID != ids[2] || !snaps[1].Keep {
		t.Fatalf("left %d snapshots", len(snaps))
	}
	if code, out, _ := runRetentionCLI(t, "keep", "--repo", dir, ids[2], "--unset"); code != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("unset: %d %s", code, out)
	}
	if s, err := catalog.ReadSnapshot(t.Context(), b, ids[2]); err != nil || s.Keep {
		t.Fatalf("after unset: %+v %v", s, err)
	}
	if code, _, errs := runRetentionCLI(t, "keep", "--repo", dir, "20200101T000000.000Z-000000"); code != ExitFailure || !strings.Contains(errs, "no snapshot") {
		t.Fatalf("missing id: %d %s", code, errs)
	}
	if code, _, _ := runRetentionCLI(t, "keep", "--repo", dir, "../x"); code != ExitUsage {
		t.Fatalf("bad id: %d", code)
	}
}

func TestLifecycle(t *testing.T) {
	code, out, errs := runRetentionCLI(t, "lifecycle", "--repo", "s3://bucket/redis/cache-a", "--keep-monthly", "12")
	if code != 0 {
		t.Fatalf("exit %d %s", code, errs)
	}
	var doc struct {
		Rules []struct {
			ID         string
			Filter     struct{ Prefix string }
			Expiration *struct{ Days int }
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(doc.Rules) != 3 || doc.Rules[0].Filter.Prefix != "redis/cache-a/snapshots/" || doc.Rules[0].Expiration.Days != 12*31+1 ||
		doc.Rules[1].Expiration.Days != doc.Rules[0].Expiration.Days+1 {
		t.Fatalf("rules:\n%s", out)
	}
	if !strings.Contains(errs, "newest verified") || !strings.Contains(errs, "point-in-time") {
		t.Fatalf("no warning: %s", errs)
	}
	// Monthly forever (the default): no expiration can express it.
	code, out, errs = runRetentionCLI(t, "lifecycle", "--repo", "s3://bucket")
	if code != 0 || strings.Contains(out, "Expiration") || !strings.Contains(errs, "forever") {
		t.Fatalf("default policy: %d\n%s\n%s", code, out, errs)
	}

	// GCS: gcloud's lifecycle file.
	code, out, errs = runRetentionCLI(t, "lifecycle", "--repo", "gs://bucket/redis/cache-a", "--keep-monthly", "12")
	var gdoc struct {
		Rule []struct {
			Action    struct{ Type string }
			Condition struct {
				Age           int
				MatchesPrefix []string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &gdoc); code != 0 || err != nil || len(gdoc.Rule) != 3 ||
		gdoc.Rule[0].Action.Type != "Delete" || gdoc.Rule[0].Condition.Age != 12*31+1 || gdoc.Rule[0].Condition.MatchesPrefix[0] != "redis/cache-a/snapshots/" ||
		gdoc.Rule[2].Action.Type != "AbortIncompleteMultipartUpload" {
		t.Fatalf("gs: exit %d %v\n%s\n%s", code, err, out, errs)
	}
	// Azure: a management policy; prefixes start with the container.
	code, out, errs = runRetentionCLI(t, "lifecycle", "--repo", "azblob://backups/cache-a?account=acct", "--keep-monthly", "12")
	var adoc struct {
		Rules []struct {
			Name       string
			Definition struct {
				Actions struct {
					BaseBlob struct {
						Delete struct{ DaysAfterModificationGreaterThan int }
					}
				}
				Filters struct{ PrefixMatch []string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &adoc); code != 0 || err != nil || len(adoc.Rules) != 2 ||
		adoc.Rules[0].Definition.Filters.PrefixMatch[0] != "backups/cache-a/snapshots/" ||
		adoc.Rules[1].Definition.Actions.BaseBlob.Delete.DaysAfterModificationGreaterThan != 12*31+2 {
		t.Fatalf("azblob: exit %d %v\n%s\n%s", code, err, out, errs)
	}
	// A local folder has none.
	if code, _, errs := runRetentionCLI(t, "lifecycle", "--repo", "/var/lib/redback/a"); code != ExitUsage || !strings.Contains(errs, "has none") {
		t.Fatalf("file: exit %d %s", code, errs)
	}
}

func TestAgent_CheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:9477
sources:
  - name: cache-a
    source: redis://:${TEST_REDIS_PASSWORD}@127.0.0.1:6379
    repo: file://%s/repo
    snapshot: {method: sync, every: 6h}
    ship: {enabled: true, interval: 1s}
    retention: {hourly: 24, daily: 30, weekly: 52, monthly: -1, pitr: 168h}
    drill: {schedule: "0 3 1 * *", rto_objective: 10m}
`, dir)
	if err := os.WriteFile(good, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_REDIS_PASSWORD", "hunter2")
	code, out, errs := runRetentionCLI(t, "agent", "--config", good, "--check-config")
	if code != 0 || !strings.Contains(out, "configuration OK: 1 source") || !strings.Contains(out, "monthly forever") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if strings.Contains(out+errs, "hunter2") {
		t.Fatalf("password printed:\n%s", out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(cfg, "every: 6h", "evry: 6h", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runRetentionCLI(t, "agent", "--config", bad, "--check-config")
	if code != ExitUsage || !strings.Contains(errs, "sources[0].snapshot.evry: unknown key") {
		t.Fatalf("bad config: exit %d %s", code, errs)
	}
	if code, _, _ := runRetentionCLI(t, "agent"); code != ExitUsage {
		t.Fatalf("no --config: exit %d", code)
	}
}
