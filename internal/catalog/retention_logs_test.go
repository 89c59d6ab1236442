package catalog

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"time"

	"redback/internal/storage"
	"redback/internal/storage/mem"
)

// putGeneration writes a generation manifest and two segments (manifests
// and data) created at created.
func putGeneration(t *testing.T, b storage.Backend, id string, created time.Time, ended bool) {
	t.Helper()
	ctx := context.Background()
	g := &Generation{Format: FormatVersion, ID: id, ReplID: id, Created: created, Ended: ended}
	if err := PutJSON(ctx, b, GenerationKey(id), g); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, 100}, {100, 200}} {
		key := SegmentDataKey(id, r[0], r[1], false)
		if _, err := b.Put(ctx, key, bytes.NewReader([]byte("x"))); err != nil {
			t.Fatal(err)
		}
		s := &Segment{Format: FormatVersion, Generation: id, Start: r[0], End: r[1], Object: Object{Key: key, StoredBytes: 1}}
		if err := PutJSON(ctx, b, SegmentKey(id, r[0], r[1]), s); err != nil {
			t.Fatal(err)
		}
	}
	// The heartbeat of an idle end (goes with the generation).
	if err := PutJSON(ctx, b, QuietKey(id), &Quiet{Format: FormatVersion, Generation: id, From: 200, Offset: 242, UnixMs: created.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
}

func TestPrune_Logs(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	b := mem.New()
	putGeneration(t, b, "g1", now.Add(-30*day), true) // superseded before the window: goes
	putGeneration(t, b, "g2", now.Add(-20*day), true) // superseded by g3 before the window: goes
	putGeneration(t, b, "g3", now.Add(-10*day), true) // g4 started inside the window: covers its start
	putGeneration(t, b, "g4", now.Add(-2*day), false) // newest
	policy := DefaultPolicy()

	dry, err := Prune(ctx, b, policy, now, PruneOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.DeletedGenerations) != 2 {
		t.Fatalf("dry run would delete %v", dry.DeletedGenerations)
	}
	if gens, _ := ListGenerations(ctx, b); len(gens) != 4 {
		t.Fatal("dry run deleted something")
	}

	res, err := Prune(ctx, b, policy, now, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gens, err := ListGenerations(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) != 2 || gens[0].ID != "g3" || gens[1].ID != "g4" {
		t.Fatalf("left %v (deleted %v, kept %v)", gens, res.DeletedGenerations, res.KeptGenerations)
	}
	for _, id := range []string{"g1", "g2"} {
		var n int
		_ = b.List(ctx, SegmentPrefix(id), func(storage.ObjectInfo) error { n++; return nil })
		_ = b.List(ctx, SegmentDataPref+id+"/", func(storage.ObjectInfo) error { n++; return nil })
		_ = b.List(ctx, QuietKey(id), func(storage.ObjectInfo) error { n++; return nil })
		if n != 0 {
			t.Fatalf("%s: %d objects left", id, n)
		}
	}
	if res.KeptGenerations["g3"] == "" || res.KeptGenerations["g4"] == "" {
		t.Fatalf("kept reasons %v", res.KeptGenerations)
	}

	// An interrupted prune (generation manifest gone, segments left) is
	// finished by the next run; a live generation is never removed.
	putGeneration(t, b, "g0", now.Add(-40*day), true)
	if err := b.Delete(ctx, GenerationKey("g0")); err != nil {
		t.Fatal(err)
	}
	if _, err := Prune(ctx, b, policy, now.Add(30*day), PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	var left int
	_ = b.List(ctx, SegmentPrefix("g0"), func(storage.ObjectInfo) error { left++; return nil })
	_ = b.List(ctx, QuietKey("g0"), func(storage.ObjectInfo) error { left++; return nil })
	if left != 0 {
		t.Fatalf("orphan segment manifests or heartbeat left: %d", left)
	}
	// A heartbeat alone left by an interrupted prune goes too.
	if err := PutJSON(ctx, b, QuietKey("g9"), &Quiet{Format: FormatVersion, Generation: "g9"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Prune(ctx, b, policy, now.Add(30*day), PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, QuietKey("g9")); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("orphan heartbeat left: %v", err)
	}
	if _, err := ReadGeneration(ctx, b, "g4"); err != nil {
		t.Fatalf("live generation removed: %v", err)
	}
	if _, err := ReadGeneration(ctx, b, "g3"); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("g3 should be gone 30 days later: %v", err)
	}
}

// TestPrune_NeverStrandsAGeneration runs every policy variant, including
// --keep-pitr 0 with one hourly snapshot (which used to delete the base of
// every generation, the live one included), over a repository with ended
// generations, a live one, plain snapshots newer than the live base, and a
// base whose generation manifest is not written yet. Afterwards every
// remaining generation has its base and every deleted one took all its
// segments with it.
func TestPrune_NeverStrandsAGeneration(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	policies := map[string]Policy{
		"pitr 0, hourly 1":  {Hourly: 1},
		"pitr 0, nothing":   {},
		"pitr 1h":           {PITR: time.Hour},
		"default":           DefaultPolicy(),
		"within 1h, pitr 0": {Within: time.Hour},
		"pitr 0, daily -1":  {Daily: -1},
	}
	for name, policy := range policies {
		t.Run(name, func(t *testing.T) {
			b := mem.New()
			put := func(s *Snapshot) {
				t.Helper()
				if _, err := b.Put(ctx, s.Object.Key, strings.NewReader("x")); err != nil {
					t.Fatal(err)
				}
				if err := PutJSON(ctx, b, SnapshotManifestKey(s.ID), s); err != nil {
					t.Fatal(err)
				}
			}
			gen := func(id string, created time.Time, ended bool) {
				t.Helper()
				putGeneration(t, b, id, created, ended)
				base := snapAt(created, true)
				base.Generation = id
				put(base)
				g, err := ReadGeneration(ctx, b, id)
				if err != nil {
					t.Fatal(err)
				}
				g.BaseSnapshot = base.ID
				if err := PutJSON(ctx, b, GenerationKey(id), g); err != nil {
					t.Fatal(err)
				}
			}
			gen("20261101T000000.000Z-aaaaaaaa", now.Add(-24*day), true)
			gen("20261120T000000.000Z-bbbbbbbb", now.Add(-5*day), true)
			gen("20261125T100000.000Z-cccccccc", now.Add(-2*time.Hour), false) // live: the shipper writes on it
			put(snapAt(now.Add(-30*time.Minute), true))                        // plain snapshots newer than the live base
			put(snapAt(now.Add(-10*time.Minute), true))
			starting := snapAt(now.Add(-time.Minute), true) // base of a generation whose manifest is not written yet
			starting.Generation = "20261125T115900.000Z-dddddddd"
			put(starting)

			res, err := Prune(ctx, b, policy, now, PruneOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ReadSnapshot(ctx, b, starting.ID); err != nil {
				t.Fatalf("base of the generation being started deleted: %v", err)
			}
			gens, err := ListGenerations(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			live := false
			for _, g := range gens {
				live = live || g.ID == "20261125T100000.000Z-cccccccc"
				if _, err := ReadSnapshot(ctx, b, g.BaseSnapshot); err != nil {
					t.Fatalf("generation %s left without its base %s (kept: %s): %v", g.ID, g.BaseSnapshot, res.KeptGenerations[g.ID], err)
				}
			}
			if !live {
				t.Fatalf("live generation deleted: %v", res.DeletedGenerationReasons)
			}
			for _, id := range res.DeletedGenerations {
				var n int
				_ = b.List(ctx, SegmentPrefix(id), func(storage.ObjectInfo) error { n++; return nil })
				_ = b.List(ctx, SegmentDataPref+id+"/", func(storage.ObjectInfo) error { n++; return nil })
				if n != 0 || res.DeletedGenerationReasons[id] == "" {
					t.Fatalf("deleted generation %s: %d objects left, reason %q", id, n, res.DeletedGenerationReasons[id])
				}
			}
			if policy.PITR == 0 && len(res.DeletedGenerations) != 2 {
				t.Fatalf("keep-pitr 0: deleted generations %v, want the two ended ones", res.DeletedGenerations)
			}
		})
	}
}

func TestPlanGenerations_Reset(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	gens := []*Generation{
		{ID: "g1", Created: now.Add(-50 * time.Hour), Ended: true},
		{ID: "g2", Created: now.Add(-40 * time.Hour), Ended: true},
		{ID: "g3", Created: now.Add(-30 * time.Hour), Reset: true, ResetFrom: "g2"},
	}
	got := map[string]bool{}
	for _, d := range PlanGenerations(gens, Policy{PITR: time.Hour}, now) {
		got[d.ID] = d.Keep
	}
	if d := cmp.Diff(map[string]bool{"g1": false, "g2": true, "g3": true}, got); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
	// Once a newer generation exists, the point before the reset is only
	// kept by the window.
	gens = append(gens, &Generation{ID: "g4", Created: now.Add(-20 * time.Hour)})
	for _, d := range PlanGenerations(gens, Policy{PITR: time.Hour}, now) {
		if d.ID == "g2" && d.Keep {
			t.Fatalf("g2 still kept: %s", d.Reason)
		}
	}
}

// TestPlanGenerations_Forks: a generation that continues another after a
// failover (Parent) keeps its whole chain of ancestors, whose base and log
// up to each fork it replays.
func TestPlanGenerations_Forks(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	gens := []*Generation{
		{ID: "g0", Created: now.Add(-60 * time.Hour), Ended: true},
		{ID: "g1", Created: now.Add(-50 * time.Hour), Ended: true},
		{ID: "g2", Created: now.Add(-40 * time.Hour), Ended: true, Parent: "g1"},
		{ID: "g3", Created: now.Add(-30 * time.Hour), Parent: "g2"},
	}
	got := map[string]bool{}
	for _, d := range PlanGenerations(gens, Policy{PITR: time.Hour}, now) {
		got[d.ID] = d.Keep
	}
	if d := cmp.Diff(map[string]bool{"g0": false, "g1": true, "g2": true, "g3": true}, got); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
}
