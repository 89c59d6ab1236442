package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/ship"
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

// shippedDrillRepo ships a real source's log into a file repository for a
// bounded time while writing in two rounds, and returns the repository
// dir, the receive time of the last command of the first round and the
// source's digest then.
func shippedDrillRepo(t *testing.T) (string, time.Time, string) {
	t.Helper()
	ctx := t.Context()
	src := redistest.Start(t, "--repl-backlog-size", "16mb")
	redistest.Populate(t, src, 20)
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	u, err := redisurl.Parse(src.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sh := &ship.Shipper{Source: u, Backend: b, Interval: 20 * time.Millisecond}
	sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	done := make(chan error, 1)
	go func() { done <- sh.Run(sctx) }()
	defer func() { cancel(); <-done }()
	c := src.Client()
	offset := func() int64 {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no master_repl_offset")
		return 0
	}
	durable := func() time.Time {
		t.Helper()
		want := offset()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			if st := sh.Stats(); st.Generation != "" && st.DurableOffset >= want {
				ws, err := pitr.Windows(ctx, b)
				if err != nil || len(ws) != 1 {
					t.Fatalf("windows %+v %v", ws, err)
				}
				for time.Now().UnixMilli() <= ws[0].To.UnixMilli()+1 { // the next write gets a later ms
					<-time.After(time.Millisecond)
				}
				return ws[0].To
			}
			<-time.After(2 * time.Millisecond)
		}
		t.Fatalf("offset %d not durable: %+v", want, sh.Stats())
		return time.Time{}
	}
	durable()
	var at time.Time
	var digest string
	for round := range 2 {
		for _, args := range [][]any{{"SET", "round", round}, {"INCR", "n"}, {"HSET", "db0:hash:small", "r", round}} {
			if err := c.Do(ctx, args...).Err(); err != nil {
				t.Fatal(err)
			}
		}
		to := durable()
		if round == 0 {
			at, digest = to, src.Digest(ctx)
		}
	}
	return dir, at, digest
}

func TestDrillCmd_PointInTime(t *testing.T) {
	redistest.Binary(t)
	dir, at, digest := shippedDrillRepo(t)
	report := filepath.Join(t.TempDir(), "drill.md")
	code, out, errs := vdRunCLI(t, "drill", "--repo", dir, "--at", at.Format(time.RFC3339Nano), "--json", "--report", report)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	var d struct {
		drillJSON
		Point struct {
			Kind       string    `json:"kind"`
			Generation string    `json:"generation"`
			Offset     int64     `json:"offset"`
			Time       time.Time `json:"time"`
		} `json:"point"`
		AOFDigest    string `json:"aof_digest"`
		ReplayDigest string `json:"replay_digest"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !d.OK || d.Point.Kind != "pitr" || d.Point.Generation == "" || d.Point.Offset == 0 || !d.Point.Time.Equal(at) ||
		d.AOFDigest != digest || d.ReplayDigest != digest || !d.DigestMatch || d.Phases["replay"] == 0 {
		t.Fatalf("report %+v\n%s", d, out)
	}
	md, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(md), "# Recovery drill PASSED") || !strings.Contains(string(md), digest) {
		t.Fatalf("markdown report: %v\n%s", err, md)
	}

	// Human output names the point.
	code, out, _ = vdRunCLI(t, "drill", "--repo", dir, "--at", at.Format(time.RFC3339Nano))
	if code != 0 || !strings.Contains(out, "point: generation "+d.Point.Generation) || !strings.Contains(out, "drill PASSED") {
		t.Fatalf("exit %d\n%s", code, out)
	}

	// Before every window and every snapshot: a clear error, exit 1.
	code, _, errs = vdRunCLI(t, "drill", "--repo", dir, "--at", at.Add(-time.Hour).Format(time.RFC3339Nano))
	if code != ExitFailure || !strings.Contains(errs, "outside every recoverable window") || !strings.Contains(errs, "no verified snapshot") {
		t.Fatalf("before everything: exit %d: %s", code, errs)
	}

	// A bit flip in a segment's data object: exit 3 naming the object.
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	gens, err := catalog.ListGenerations(t.Context(), b)
	if err != nil || len(gens) != 1 {
		t.Fatalf("%v %v", gens, err)
	}
	segs, err := catalog.ListSegments(t.Context(), b, gens[0].ID)
	if err != nil || len(segs) == 0 {
		t.Fatalf("%v %v", segs, err)
	}
	key := segs[len(segs)-1].Object.Key
	obj := filepath.Join(dir, filepath.FromSlash(key))
	raw, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x10
	if err := os.WriteFile(obj, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = vdRunCLI(t, "drill", "--repo", dir, "--at", time.Now().Format(time.RFC3339Nano))
	if code != ExitVerify || !strings.Contains(out, key) || !strings.Contains(out, "✗ restore") {
		t.Fatalf("bit flip: exit %d\n%s", code, out)
	}
}
