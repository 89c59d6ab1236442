package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/ops"
	"redback/internal/redistest"
	"redback/internal/verify"
)

// TestPrune_AbandonedTempFiles: staging files (".redback-tmp-*") a writer
// killed mid-write left in a folder repository are a note of `verify`
// (exit 0), reported by `prune --dry-run --json` and removed by prune when
// last written longer ago than --uploads-older-than; a young one (a
// writer in flight) is left alone, even with --uploads-older-than 1s (the
// floor is an hour).
func TestPrune_AbandonedTempFiles(t *testing.T) {
	dir := t.TempDir()
	repo := "file://" + dir
	src := redistest.Start(t)
	redistest.Populate(t, src, 50)
	if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
	}
	var snapFile string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.HasSuffix(p, ".rdb.zst") {
			snapFile = p
		}
		return nil
	})
	if snapFile == "" {
		t.Fatal("no snapshot object in the repository")
	}
	stale := filepath.Join(filepath.Dir(snapFile), ".redback-tmp-1111")
	fresh := filepath.Join(filepath.Dir(snapFile), ".redback-tmp-2222")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("half an object"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	code, out, errs := runCLI(t, "verify", "--repo", repo, "--json")
	var v struct {
		OK       bool `json:"ok"`
		Findings []struct {
			Object, Severity, Code string
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &v); code != ExitOK || err != nil || !v.OK {
		t.Fatalf("verify --json: exit %d, %v\n%s%s", code, err, out, errs)
	}
	notes := 0
	for _, f := range v.Findings {
		if f.Code == verify.CodeTempFile && f.Severity == "info" && strings.Contains(f.Object, ".redback-tmp-") {
			notes++
		}
	}
	if notes != 2 {
		t.Fatalf("verify noted %d staging files, want 2: %+v", notes, v.Findings)
	}

	type pruneJSON struct {
		AbandonedTempFiles []ops.AbandonedUpload `json:"abandoned_temp_files"`
	}
	code, out, errs = runCLI(t, "prune", "--repo", repo, "--dry-run", "--json")
	var res pruneJSON
	if err := json.Unmarshal([]byte(out), &res); code != ExitOK || err != nil || len(res.AbandonedTempFiles) != 1 ||
		!strings.HasSuffix(res.AbandonedTempFiles[0].Key, "/.redback-tmp-1111") || res.AbandonedTempFiles[0].Aborted ||
		time.Since(res.AbandonedTempFiles[0].Initiated) < 47*time.Hour {
		t.Fatalf("prune --dry-run --json: exit %d, %v, %+v\n%s%s", code, err, res, out, errs)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("--dry-run removed the stale file: %v", err)
	}

	code, out, errs = runCLI(t, "prune", "--repo", repo, "--uploads-older-than", "1s")
	if code != ExitOK || !strings.Contains(out, "removed an abandoned staging file ") || strings.Contains(out, "2222") {
		t.Fatalf("prune: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the stale staging file is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("prune removed the young staging file: %v", err)
	}
	if code, out, errs := runCLI(t, "verify", "--repo", repo); code != ExitOK || !strings.Contains(out, "2222") || strings.Contains(out, "1111") {
		t.Fatalf("verify after prune: exit %d\n%s%s", code, out, errs)
	}
}
