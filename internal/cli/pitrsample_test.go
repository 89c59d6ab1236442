package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"redback/internal/redistest"
)

// TestRestore_PITRVerifiedBySampleWithoutDebug: a point-in-time restore
// (`restore --at latest`, after a real `redback ship` log written on top
// of a snapshot) into a server started with --enable-debug-command no
// rebuilds the point in a scratch server and verifies the target's final
// state, log replay included, by a keyed sample against that point: the
// JSON says verified_by "sample" with sample_checked and no mismatches,
// and a snapshot of the target, restored where DEBUG works, is
// digest-equal to the source at the point. Into a server with DEBUG the
// same restore says verified_by "digest"; into one that loses keys as
// they are written (random eviction under a memory limit) it exits 3
// naming keys only the log replay wrote.
func TestRestore_PITRVerifiedBySampleWithoutDebug(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	redistest.Populate(t, src, 200)
	repo := "file://" + t.TempDir()
	if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
	}
	r := startShip(t, src, repo, "--interval", "50ms")
	for i := range 150 {
		c := src.Client()
		if err := c.Set(ctx, fmt.Sprintf("after:%d", i), i, time.Duration(i%3)*time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.HSet(ctx, "after:hash", fmt.Sprint(i), i).Err(); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := c.Set(ctx, fmt.Sprintf("after:big:%d", i), strings.Repeat(fmt.Sprint(i%10), 64<<10), 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.waitDurable()
	if code := r.stop(); code != ExitOK {
		t.Fatalf("ship: exit %d\n%s", code, r.stderr.String())
	}
	want := src.Digest(ctx)

	target := redistest.Start(t, "--enable-debug-command", "no")
	if err := target.Client().Do(ctx, "DEBUG", "DIGEST").Err(); err == nil {
		t.Fatal("DEBUG DIGEST works on the target")
	}
	code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", target.URL(), "--json")
	if code != ExitOK {
		t.Fatalf("restore --at latest: exit %d\n%s%s", code, out, errs)
	}
	var j struct {
		VerifiedBy       string `json:"verified_by"`
		SampleChecked    int    `json:"sample_checked"`
		SampleMismatches int    `json:"sample_mismatches"`
		Result           struct {
			Commands int64 `json:"commands"`
			Base     struct {
				Notes []string `json:"notes"`
			} `json:"base"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if j.VerifiedBy != "sample" || j.SampleChecked != 100 || j.SampleMismatches != 0 {
		t.Fatalf("restore --at latest --json: %+v\n%s", j, out)
	}
	if !strings.Contains(strings.Join(j.Result.Base.Notes, "\n"), "verified by sample") {
		t.Fatalf("no note says how it was verified: %q", j.Result.Base.Notes)
	}

	// The text output says so too.
	again := redistest.Start(t, "--enable-debug-command", "no")
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", again.URL()); code != ExitOK ||
		!strings.Contains(out, "verified by sample against the point rebuilt in a scratch server: 100 keys read back, 0 differ") {
		t.Fatalf("restore --at latest: exit %d\n%s%s", code, out, errs)
	}

	// What the target holds, through a snapshot of it, is the point.
	repo2 := "file://" + t.TempDir()
	if code, out, errs := runCLI(t, "snapshot", "--source", target.URL(), "--repo", repo2); code != ExitOK {
		t.Fatalf("snapshot of the target: exit %d\n%s%s", code, out, errs)
	}
	restoreEqual(t, repo2, want, "--latest")

	// Where the target has DEBUG, the final state is compared by digest.
	withDebug := redistest.Start(t)
	code, out, errs = runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", withDebug.URL(), "--json")
	j.VerifiedBy = ""
	if err := json.Unmarshal([]byte(out), &j); code != ExitOK || err != nil || j.VerifiedBy != "digest" || withDebug.Digest(ctx) != want {
		t.Fatalf("restore --at latest into a server with DEBUG: exit %d, %v, %+v\n%s%s", code, err, j, out, errs)
	}

	// A target that loses keys as they are written (a memory limit with
	// random eviction, below what the point holds): exit 3, naming keys.
	lossy := redistest.Start(t, "--enable-debug-command", "no", "--maxmemory", "3mb", "--maxmemory-policy", "allkeys-random")
	code, out, errs = runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", lossy.URL(), "--method", "restore", "--json")
	j.VerifiedBy, j.SampleMismatches = "", 0
	if err := json.Unmarshal([]byte(out), &j); code != ExitVerify || err != nil || j.VerifiedBy != "" || j.SampleMismatches == 0 ||
		!strings.Contains(out, "verification by sample failed") {
		t.Fatalf("restore --at latest into a target that loses keys: exit %d, %v, %+v\n%s%s", code, err, j, out, errs)
	}
	// The keys named are ones only the log replay wrote: the check is of
	// the point, not of the base snapshot.
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(out), &e); err != nil || !strings.Contains(e.Error, `key "after:`) {
		t.Fatalf("the error names no key written after the snapshot: %v %s", err, e.Error)
	}
}
