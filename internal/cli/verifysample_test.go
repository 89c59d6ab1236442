package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"redback/internal/catalog"
	"redback/internal/redistest"
)

// TestRestore_VerifiedBySampleWithoutDebug: targets that refuse DEBUG (as
// managed services do): one started with --enable-debug-command no
// (restored by replication, whose DEBUG DIGEST is then refused), one whose
// DEBUG is renamed by rename-command in its config file, restored with
// RESTORE commands. Both restores verify by reading a sample of keys back
// with DUMP and PEXPIRETIME (and the key counts from INFO keyspace), say
// so in --json ("verified_by": "sample") and in the text output, and exit
// 0; the restored data equals the source (the digest of a snapshot of the
// target, computed by redback from its RDB, equals the source's DEBUG
// DIGEST).
func TestRestore_VerifiedBySampleWithoutDebug(t *testing.T) {
	src := redistest.Start(t)
	keys := redistest.Populate(t, src, 300)
	repo := "file://" + t.TempDir()
	if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
	}
	noDebug := redistest.Start(t, "--enable-debug-command", "no")
	renamed := redistest.StartWithConfig(t, "rename-command DEBUG redback-test-hidden-debug\n")
	for _, tc := range []struct {
		name   string
		target *redistest.Server
		method string
	}{
		{"enable-debug-command no", noDebug, "replicate"},
		{"DEBUG renamed", renamed, "restore"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			if err := tc.target.Client().Do(t.Context(), "DEBUG", "DIGEST").Err(); err == nil {
				t.Fatalf("%s: DEBUG DIGEST works on the target", tc.name)
			}
			code, out, errs := runCLI(t, "restore", "--repo", repo, "--latest", "--to-redis", tc.target.URL(), "--method", tc.method, "--json")
			if code != ExitOK {
				t.Fatalf("%s: exit %d\n%s%s", tc.name, code, out, errs)
			}
			var j struct {
				Method           string   `json:"method"`
				VerifiedBy       string   `json:"verified_by"`
				SampleChecked    int      `json:"sample_checked"`
				SampleMismatches int      `json:"sample_mismatches"`
				KeysRestored     int      `json:"keys_restored"`
				Notes            []string `json:"notes"`
			}
			if err := json.Unmarshal([]byte(out), &j); err != nil {
				t.Fatal(err)
			}
			if j.Method != tc.method || j.VerifiedBy != "sample" || j.SampleChecked != 100 || j.SampleMismatches != 0 || j.KeysRestored != keys {
				t.Fatalf("%s: %+v\n%s", tc.name, j, out)
			}
			if !strings.Contains(strings.Join(j.Notes, "\n"), "verified by sample") {
				t.Fatalf("%s: no note says how it was verified: %q", tc.name, j.Notes)
			}
			assertSameDigest(t, src, tc.target)
		})
	}

	// The text output says so too.
	other := redistest.Start(t, "--enable-debug-command", "no")
	code, out, errs := runCLI(t, "restore", "--repo", repo, "--latest", "--to-redis", other.URL(), "--method", "restore")
	if code != ExitOK || !strings.Contains(errs, "note: verified by sample") {
		t.Fatalf("text output: exit %d\n%s%s", code, out, errs)
	}
}

// assertSameDigest compares the digest of a snapshot of b (computed by
// redback from the RDB b sends, no DEBUG needed) with a's DEBUG DIGEST.
func assertSameDigest(t *testing.T, a, b *redistest.Server) {
	t.Helper()
	code, out, errs := runCLI(t, "snapshot", "--source", b.URL(), "--repo", "file://"+t.TempDir(), "--json")
	if code != ExitOK {
		t.Fatalf("snapshot of the target: exit %d\n%s%s", code, out, errs)
	}
	var snap catalog.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatal(err)
	}
	if want := a.Digest(t.Context()); snap.Digest != want {
		t.Fatalf("the restored data's digest is %s, the source's %s", snap.Digest, want)
	}
}

// TestRestore_VerifiedBySampleEachServer: on every server build, an
// all-types dataset (hash-field TTLs and 8.6 streams where the server has
// them) restored with RESTORE commands and by replication into servers
// without DEBUG verifies by sample with no mismatch: the value digests
// redback computes from the target's DUMP payloads equal the backup's.
func TestRestore_VerifiedBySampleEachServer(t *testing.T) {
	redistest.EachServer(t, func(t *testing.T, b redistest.Bin) {
		src := redistest.StartBin(t, b)
		keys := redistest.PopulateAll(t, src, 200)
		repo := "file://" + t.TempDir()
		if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
			t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
		}
		for _, method := range []string{"restore", "replicate"} {
			dst := redistest.StartBin(t, b, "--enable-debug-command", "no")
			code, out, errs := runCLI(t, "restore", "--repo", repo, "--latest", "--to-redis", dst.URL(), "--method", method, "--json")
			if code != ExitOK {
				t.Fatalf("%s: exit %d\n%s%s", method, code, out, errs)
			}
			var j struct {
				VerifiedBy       string `json:"verified_by"`
				SampleChecked    int    `json:"sample_checked"`
				SampleMismatches int    `json:"sample_mismatches"`
				KeysRestored     int    `json:"keys_restored"`
			}
			if err := json.Unmarshal([]byte(out), &j); err != nil {
				t.Fatal(err)
			}
			if j.VerifiedBy != "sample" || j.SampleChecked != 100 || j.SampleMismatches != 0 || j.KeysRestored != keys {
				t.Fatalf("%s: %+v\n%s", method, j, out)
			}
		}
	})
}
