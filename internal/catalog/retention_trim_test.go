package catalog

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"redback/internal/storage"
	"redback/internal/storage/mem"
)

// trimRepo is a generation g (base at offset 0, twenty days old) with ten
// segments of 100 offsets and snapshots synthesized from its log at
// offsets 300, 500, 700 and 1000 (14 and 10 days, 6 days and an hour old).
func trimRepo(t *testing.T, now time.Time) (storage.Backend, map[int64]*Snapshot, *Snapshot) {
	t.Helper()
	ctx := context.Background()
	day := 24 * time.Hour
	b := mem.New()
	base := snapAt(now.Add(-20*day), true)
	base.Generation, base.Method = "g", "sync"
	g := &Generation{Format: FormatVersion, ID: "g", ReplID: "r", Created: base.StartTime, BaseSnapshot: base.ID}
	if err := PutJSON(ctx, b, GenerationKey("g"), g); err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 10; i++ {
		key := SegmentDataKey("g", i*100, i*100+100, false)
		if _, err := b.Put(ctx, key, bytes.NewReader([]byte("x"))); err != nil {
			t.Fatal(err)
		}
		s := &Segment{Format: FormatVersion, Generation: "g", Start: i * 100, End: i*100 + 100, Object: Object{Key: key, StoredBytes: 1}}
		if err := PutJSON(ctx, b, SegmentKey("g", s.Start, s.End), s); err != nil {
			t.Fatal(err)
		}
	}
	snaps := map[int64]*Snapshot{}
	for off, ago := range map[int64]time.Duration{300: 14 * day, 500: 10 * day, 700: 6 * day, 1000: time.Hour} {
		s := snapAt(now.Add(-ago), true)
		s.Generation, s.Method, s.Source.Offset = "g", MethodLog, off
		snaps[off] = s
	}
	for _, s := range append([]*Snapshot{base}, snaps[300], snaps[500], snaps[700], snaps[1000]) {
		if err := PutJSON(ctx, b, SnapshotManifestKey(s.ID), s); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put(ctx, s.Object.Key, bytes.NewReader([]byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	return b, snaps, base
}

// segStarts lists the starts of g's segments left.
func segStarts(t *testing.T, b storage.Backend) []int64 {
	t.Helper()
	segs, err := ListSegments(context.Background(), b, "g")
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, s := range segs {
		out = append(out, s.Start)
	}
	return out
}

// TestPrune_TrimsLogBeforeAnchor: with a 7-day PITR window, the log of a
// generation goes up to the newest snapshot synthesized from it that ended
// before the window (its log anchor, kept), never what the window needs;
// the anchor stays while the log starts from it, even when a longer
// window later moves the rule's anchor back; a live pin holds the log
// after its snapshot; the newest segment always stays.
func TestPrune_TrimsLogBeforeAnchor(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	week := Policy{PITR: 7 * day}

	b, snaps, base := trimRepo(t, now)
	dry, err := Prune(ctx, b, week, now, PruneOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.TrimmedLogs["g"] != 500 || dry.TrimmedSegments != 5 || len(segStarts(t, b)) != 10 {
		t.Fatalf("dry run: trimmed %v %d, %d segments left", dry.TrimmedLogs, dry.TrimmedSegments, len(segStarts(t, b)))
	}
	res, err := Prune(ctx, b, week, now, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]int64{500, 600, 700, 800, 900}, segStarts(t, b)); d != "" {
		t.Fatalf("segments left (-want +got)\n%s", d)
	}
	keep := map[string]bool{}
	for _, d := range res.Decisions {
		keep[d.ID] = d.Keep
	}
	want := map[string]bool{base.ID: true, snaps[300].ID: false, snaps[500].ID: true, snaps[700].ID: false, snaps[1000].ID: true}
	if d := cmp.Diff(want, keep); d != "" {
		t.Fatalf("kept (-want +got)\n%s", d)
	}
	var segs []*Segment
	for _, st := range segStarts(t, b) {
		segs = append(segs, &Segment{Start: st, End: st + 100})
	}
	g, err := ReadGeneration(ctx, b, "g")
	if err != nil {
		t.Fatal(err)
	}
	left, _, err := ListSnapshots(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if a := LogAnchor(g, segs, left); a == nil || a.ID != snaps[500].ID {
		t.Fatalf("log anchor %+v, want %s", a, snaps[500].ID)
	}
	if gaps := GapsAfter(Contiguity(g, segs), 500); len(gaps) != 0 {
		t.Fatalf("gaps after the anchor: %v", gaps)
	}

	// Again: nothing more goes. A month-long window: the rule has no
	// anchor before it, but the log starts from offset 500, so that
	// snapshot stays.
	for _, p := range []Policy{week, {PITR: 30 * day}} {
		res, err := Prune(ctx, b, p, now, PruneOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.TrimmedSegments != 0 || len(segStarts(t, b)) != 5 {
			t.Fatalf("pitr %s: trimmed %d more", p.PITR, res.TrimmedSegments)
		}
		if _, err := ReadSnapshot(ctx, b, snaps[500].ID); err != nil {
			t.Fatalf("pitr %s: the snapshot the log starts from is gone: %v", p.PITR, err)
		}
	}

	// A live pin on the snapshot at 300 (a restore reading the log after
	// it) holds the log from there; a pin on the base holds all of it.
	for _, pinned := range []string{"300", "base"} {
		now := time.Now() // pins live at the wall clock
		b, snaps, base := trimRepo(t, now)
		id := base.ID
		if pinned == "300" {
			id = snaps[300].ID
		}
		if _, err := PutPin(ctx, b, id, "restore", "test", time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := Prune(ctx, b, week, now, PruneOptions{}); err != nil {
			t.Fatal(err)
		}
		want := []int64{300, 400, 500, 600, 700, 800, 900}
		if pinned == "base" {
			want = []int64{0, 100, 200, 300, 400, 500, 600, 700, 800, 900}
		}
		if d := cmp.Diff(want, segStarts(t, b)); d != "" {
			t.Fatalf("pin on %s: segments left (-want +got)\n%s", pinned, d)
		}
	}

	// No window: the log goes up to the newest synthesized snapshot, but
	// the newest segment stays.
	b, _, _ = trimRepo(t, now)
	if _, err := Prune(ctx, b, Policy{Hourly: 1}, now, PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]int64{900}, segStarts(t, b)); d != "" {
		t.Fatalf("no window: segments left (-want +got)\n%s", d)
	}
}
