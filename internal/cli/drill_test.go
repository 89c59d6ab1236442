package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/redistest"
	"redback/internal/storage/file"
)

// drillJSON is the part of `redback drill --json` the tests read.
type drillJSON struct {
	OK                  bool               `json:"ok"`
	Snapshot            string             `json:"snapshot"`
	Keys                int64              `json:"keys"`
	ExpectedKeys        int64              `json:"expected_keys"`
	DigestMatch         bool               `json:"digest_match"`
	RTOSeconds          float64            `json:"rto_seconds"`
	RPOSeconds          float64            `json:"rpo_seconds"`
	RTOObjectiveSeconds float64            `json:"rto_objective_seconds"`
	RTOMet              bool               `json:"rto_met"`
	SampleChecked       int                `json:"sample_checked"`
	SampleMismatches    int                `json:"sample_mismatches"`
	FunctionsOK         bool               `json:"functions_ok"`
	Phases              map[string]float64 `json:"phases"`
	Checks              []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
	Error string `json:"error"`
}

func decodeDrill(t *testing.T, out string) drillJSON {
	t.Helper()
	var d drillJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("drill --json: %v\n%s", err, out)
	}
	return d
}

func TestDrillCmd(t *testing.T) {
	redistest.Binary(t)
	dir, snaps := vdRepo(t, 2)
	report := filepath.Join(t.TempDir(), "drill.md")

	code, out, errs := vdRunCLI(t, "drill", "--repo", dir, "--json", "--rto-objective", "10m", "--report", report)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	d := decodeDrill(t, out)
	if !d.OK || d.Snapshot != snaps[1].ID || d.Keys != d.ExpectedKeys || d.Keys != 8 || !d.DigestMatch || !d.RTOMet ||
		d.RTOObjectiveSeconds != 600 || d.SampleChecked != 8 || !d.FunctionsOK || len(d.Phases) != 4 || len(d.Checks) != 7 {
		t.Fatalf("report %+v", d)
	}
	md, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(md), "# Recovery drill PASSED") || !strings.Contains(string(md), "✓ **digest**") {
		t.Fatalf("markdown report: %v\n%s", err, md)
	}

	// Human output, a chosen snapshot.
	code, out, _ = vdRunCLI(t, "drill", "--repo", dir, "--snapshot", snaps[0].ID)
	if code != 0 || !strings.Contains(out, "drill PASSED") || !strings.Contains(out, snaps[0].ID) {
		t.Fatalf("exit %d\n%s", code, out)
	}

	// --at picks the newest snapshot at or before the time.
	at := snaps[0].EndTime.Add(time.Millisecond).Format(time.RFC3339Nano)
	code, out, _ = vdRunCLI(t, "drill", "--repo", dir, "--at", at, "--json")
	if d := decodeDrill(t, out); code != 0 || d.Snapshot != snaps[0].ID {
		t.Fatalf("--at: exit %d, snapshot %s", code, d.Snapshot)
	}

	// An RTO objective nobody can meet fails the drill.
	code, out, _ = vdRunCLI(t, "drill", "--repo", dir, "--rto-objective", "1ns", "--json")
	if d := decodeDrill(t, out); code != ExitVerify || d.OK || d.RTOMet {
		t.Fatalf("1ns objective: exit %d %+v", code, d)
	}
}

func TestDrillCmd_Failures(t *testing.T) {
	redistest.Binary(t)
	dir, snaps := vdRepo(t, 1)

	// No redis-server: the drill cannot run.
	code, _, errs := vdRunCLI(t, "drill", "--repo", dir, "--redis-server", filepath.Join(t.TempDir(), "none"))
	if code != ExitFailure || !strings.Contains(errs, "redis-server") {
		t.Fatalf("no server: exit %d: %s", code, errs)
	}

	// A digest tampered in the manifest: mismatch, exit 3.
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := *snaps[0]
	s.Digest = strings.Repeat("0", 40)
	if err := catalog.PutJSON(context.Background(), b, catalog.SnapshotManifestKey(s.ID), &s); err != nil {
		t.Fatal(err)
	}
	code, out, _ := vdRunCLI(t, "drill", "--repo", dir, "--json")
	if d := decodeDrill(t, out); code != ExitVerify || d.DigestMatch || d.OK {
		t.Fatalf("tampered digest: exit %d %+v", code, d)
	}
	if err := catalog.PutJSON(context.Background(), b, catalog.SnapshotManifestKey(s.ID), snaps[0]); err != nil {
		t.Fatal(err)
	}

	// A bit flip in the stored object: exit 3 naming the object.
	obj := filepath.Join(dir, filepath.FromSlash(snaps[0].Object.Key))
	raw, _ := os.ReadFile(obj)
	raw[len(raw)/2] ^= 0x02
	os.WriteFile(obj, raw, 0o644)
	code, out, _ = vdRunCLI(t, "drill", "--repo", dir)
	if code != ExitVerify || !strings.Contains(out, snaps[0].Object.Key) || !strings.Contains(out, "✗ restore") {
		t.Fatalf("bit flip: exit %d\n%s", code, out)
	}

	// Usage.
	for _, args := range [][]string{
		{"drill", "--repo", dir, "--at", "yesterday-ish"},
		{"drill", "--repo", dir, "--at", "2026-11-25", "--snapshot", snaps[0].ID},
		{"drill"},
	} {
		if code, _, errs := vdRunCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errs)
		}
	}
}
