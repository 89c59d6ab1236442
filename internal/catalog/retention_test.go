package catalog

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"redback/internal/storage"
	"redback/internal/storage/mem"
)

var update = flag.Bool("update", false, "rewrite golden files")

func snapAt(t time.Time, verified bool) *Snapshot {
	id := t.UTC().Format("20060102T150405.000Z") + "-000000"
	return &Snapshot{Format: FormatVersion, ID: id, StartTime: t.Add(-time.Minute), EndTime: t, Verified: verified,
		Object: Object{Key: SnapshotDataKey(id, false), StoredBytes: 100}}
}

// TestPlan_YearOfHourlySnapshots simulates a year of hourly snapshots on a
// compressed clock, applying retention after each one as the agent does,
// and compares the survivors (with their reasons) to a golden file.
func TestPlan_YearOfHourlySnapshots(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	policy := DefaultPolicy()
	var snaps []*Snapshot
	deleted := 0
	gen := ""
	var last []Decision
	for h := 0; h < 365*24; h++ {
		end := start.Add(time.Duration(h)*time.Hour + 7*time.Minute + 30*time.Second)
		s := snapAt(end, true)
		// A new log generation every 45 days (a full resync); its base
		// is the first snapshot, then one base a day at midnight.
		if h%(45*24) == 0 {
			gen = fmt.Sprintf("%016x", h)
		}
		if h%24 == 0 {
			s.Generation = gen
		}
		if h == 100 {
			s.Keep = true // redback keep
		}
		if h == 5000 {
			s.Verified = false // an import that did not verify
		}
		snaps = append(snaps, s)
		now := end.Add(time.Minute)
		ds := Plan(snaps, policy, now)
		if len(ds) != len(snaps) {
			t.Fatalf("hour %d: %d decisions for %d snapshots", h, len(ds), len(snaps))
		}
		snaps = snaps[:0]
		for _, d := range ds {
			if d.Keep {
				snaps = append(snaps, d.Snapshot)
			} else {
				deleted++
			}
		}
		if len(snaps) == 0 || snaps[0].ID != s.ID && s.Verified {
			t.Fatalf("hour %d: the newest snapshot %s was deleted", h, s.ID)
		}
		// Bound: 24+30+52 GFS, months so far, marked, PITR bases, unverified.
		if len(snaps) > 24+30+52+h/(28*24)+1+1+10 {
			t.Fatalf("hour %d: %d snapshots kept", h, len(snaps))
		}
		last = ds
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %d snapshots over a year, %d deleted, %d kept\n", 365*24, deleted, len(snaps))
	for _, d := range last {
		if d.Keep {
			fmt.Fprintf(&b, "%s %s\n", d.EndTime.Format("2006-01-02T15:04"), strings.Join(d.Reasons, "; "))
		}
	}
	golden(t, "retention_year.golden", b.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update)", err, t.Name())
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Fatalf("%s differs (-want +got; -update rewrites):\n%s", path, d)
	}
}

func TestPlan_Rules(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	verified := snapAt(now.Add(-3*time.Hour), true)
	older := snapAt(now.Add(-5*time.Hour), true)
	newerUnverified := snapAt(now.Add(-1*time.Hour), false)
	olderUnverified := snapAt(now.Add(-4*time.Hour), false)
	marked := snapAt(now.Add(-300*24*time.Hour), true)
	marked.Keep = true
	pinned := snapAt(now.Add(-200*24*time.Hour), true)
	expiredPin := snapAt(now.Add(-201*24*time.Hour), true)
	shipPinned := snapAt(now.Add(-202*24*time.Hour), true)
	policy := Policy{Hourly: 1, Pins: []Pin{
		{ID: "p1", Snapshot: pinned.ID, Purpose: "drill", Expires: now.Add(time.Hour)},
		{ID: "p2", Snapshot: expiredPin.ID, Purpose: "restore", Expires: now.Add(-time.Hour)},
	}, Pinned: func(id string) (bool, string) { return id == shipPinned.ID, "segments depend on it" }}
	ds := Plan([]*Snapshot{older, marked, verified, newerUnverified, olderUnverified, pinned, expiredPin, shipPinned}, policy, now)
	got := map[string]string{}
	for _, d := range ds {
		got[d.ID] = fmt.Sprint(d.Keep, " ", strings.Join(d.Reasons, "; "))
	}
	want := map[string]string{
		newerUnverified.ID: "true unverified, newer than the newest verified snapshot",
		verified.ID:        "true newest verified; hourly 1 (2026-06-10 09h)",
		olderUnverified.ID: "false covered by newer verified " + verified.ID,
		older.ID:           "false covered by newer verified " + verified.ID,
		marked.ID:          "true marked keep",
		pinned.ID:          "true pinned by drill p1 until 2026-06-10T13:00:00Z",
		expiredPin.ID:      "false covered by newer verified " + verified.ID,
		shipPinned.ID:      "true pinned: segments depend on it",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
	if ds[0].ID != newerUnverified.ID || ds[len(ds)-1].ID != marked.ID {
		t.Fatal("not newest first")
	}
}

// TODO(ship): once log shipping writes segments, add the end-to-end PITR
// test the issue asks for: ship a year-like history on a compressed clock,
// prune after each snapshot, then restore at random moments inside the PITR
// window and compare DEBUG DIGEST with the source at that moment. Until
// then TestPlan_PITRBases checks which bases the window keeps.

func TestPlan_NoVerifiedKeepsAll(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	ds := Plan([]*Snapshot{snapAt(now.Add(-time.Hour), false), snapAt(now.Add(-1000*time.Hour), false)}, Policy{}, now)
	for _, d := range ds {
		if !d.Keep {
			t.Fatalf("deleted %s with no verified snapshot", d.ID)
		}
	}
}

func TestPlan_PITRBases(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	mk := func(ago time.Duration, gen string) *Snapshot {
		s := snapAt(now.Add(-ago), true)
		s.Generation = gen
		return s
	}
	day := 24 * time.Hour
	oldGenBase := mk(30*day, "g1") // generation g1 ended 10 days ago: outside the window
	g2Base := mk(20*day, "g2")     // g2 started 20 days ago, before the window
	g2Mid := mk(9*day, "g2")       // newest g2 base before the window: needed for its start
	g2Inside := mk(3*day, "g2")    // inside the window
	g1Other := mk(25*day, "g1")    // older base, not needed
	plain := mk(8*day, "")         // not a base
	ds := Plan([]*Snapshot{oldGenBase, g2Base, g2Mid, g2Inside, g1Other, plain}, Policy{PITR: 7 * day}, now)
	keep := map[string]bool{}
	for _, d := range ds {
		keep[d.ID] = d.Keep
	}
	want := map[string]bool{oldGenBase.ID: false, g2Base.ID: false, g2Mid.ID: true, g2Inside.ID: true, g1Other.ID: false, plain.ID: false}
	if d := cmp.Diff(want, keep); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
	// g1 live into the window when g2 starts inside it.
	g3 := mk(2*day, "g3")
	ds = Plan([]*Snapshot{g2Mid, g2Inside, g3}, Policy{PITR: 7 * day}, now)
	for _, d := range ds {
		if !d.Keep {
			t.Fatalf("%s deleted: %v", d.ID, d.Reasons)
		}
	}
}

// failingDelete fails deletes of one key.
type failingDelete struct {
	storage.Backend
	key string
}

func (f failingDelete) Delete(ctx context.Context, key string) error {
	if key == f.key {
		return errors.New("permission denied")
	}
	return f.Backend.Delete(ctx, key)
}

func TestPrune_OrderDryRunAndFailures(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	var ids []string
	for i := 0; i < 4; i++ {
		s := snapAt(now.Add(-time.Duration(i)*time.Hour), true)
		ids = append(ids, s.ID)
		if _, err := b.Put(ctx, s.Object.Key, strings.NewReader("data")); err != nil {
			t.Fatal(err)
		}
		if err := PutJSON(ctx, b, SnapshotManifestKey(s.ID), s); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []Pin{
		{Format: 1, ID: "expired", Snapshot: ids[3], Purpose: "restore", Expires: now.Add(-time.Minute)},
		{Format: 1, ID: "live", Snapshot: ids[2], Purpose: "drill", Expires: now.Add(time.Hour)},
	} {
		if err := PutJSON(ctx, b, PinKey(p.ID), p); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := PutPin(ctx, b, ids[0], "drill", "test", time.Hour); err != nil || RemovePin(ctx, b, p.ID) != nil {
		t.Fatalf("put/remove pin: %v", err)
	}
	policy := Policy{Hourly: 1}
	// Dry run: nothing changes.
	res, err := Prune(ctx, b, policy, now, PruneOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{ids[1], ids[3]}, res.Deleted); d != "" {
		t.Fatalf("dry run deleted (-want +got)\n%s", d)
	}
	if snaps, _, _ := ListSnapshots(ctx, b); len(snaps) != 4 {
		t.Fatalf("dry run removed snapshots: %d left", len(snaps))
	}
	// The data delete of ids[1] fails: its manifest is already gone.
	fb := failingDelete{Backend: b, key: SnapshotDataKey(ids[1], false)}
	res, err = Prune(ctx, fb, policy, now, PruneOptions{})
	if err == nil || !strings.Contains(err.Error(), "permission denied") || res.Failures != 1 {
		t.Fatalf("want one failure, got %v %+v", err, res)
	}
	if _, err := b.Stat(ctx, SnapshotManifestKey(ids[1])); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("manifest of %s still there: %v", ids[1], err)
	}
	for _, k := range []string{SnapshotManifestKey(ids[3]), SnapshotDataKey(ids[3], false)} {
		if _, err := b.Stat(ctx, k); !errors.Is(err, storage.ErrNotExist) {
			t.Fatalf("%s still there: %v", k, err)
		}
	}
	pins, err := ListPins(ctx, b)
	if err != nil || len(pins) != 1 || pins[0].Snapshot != ids[2] {
		t.Fatalf("pins %+v %v", pins, err)
	}
	// A manifest delete that fails keeps the data and is reported.
	fb = failingDelete{Backend: b, key: SnapshotManifestKey(ids[2])}
	if err := RemovePin(ctx, b, pins[0].ID); err != nil {
		t.Fatal(err)
	}
	res, err = Prune(ctx, fb, policy, now, PruneOptions{})
	if err == nil || res.Failures != 1 || len(res.Deleted) != 0 {
		t.Fatalf("want manifest failure, got %v %+v", err, res)
	}
	if _, err := b.Stat(ctx, SnapshotDataKey(ids[2], false)); err != nil {
		t.Fatalf("data of undeleted manifest removed: %v", err)
	}
}

// TestPlan_LogSnapshotsAreNotBases: snapshots synthesized from a
// generation's log are kept only by the ordinary rules; the generation's
// base stays while the generation does.
func TestPlan_LogSnapshotsAreNotBases(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	base := snapAt(now.Add(-20*day), true)
	base.Generation = "g"
	fromLog := func(ago time.Duration) *Snapshot {
		s := snapAt(now.Add(-ago), true)
		s.Generation, s.Method = "g", MethodLog
		return s
	}
	before, inside, newest := fromLog(9*day), fromLog(3*day), fromLog(time.Hour)
	g := &Generation{ID: "g", BaseSnapshot: base.ID, Created: base.StartTime}
	ds := Plan([]*Snapshot{base, before, inside, newest}, Policy{PITR: 7 * day, Generations: []*Generation{g}}, now)
	keep := map[string]bool{}
	for _, d := range ds {
		keep[d.ID] = d.Keep
	}
	want := map[string]bool{base.ID: true, before.ID: false, inside.ID: false, newest.ID: true}
	if d := cmp.Diff(want, keep); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
}
