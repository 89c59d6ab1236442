package catalog

import (
	"bytes"
	"context"
	"errors"
	"testing"
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
	if left != 0 {
		t.Fatalf("orphan segment manifests left: %d", left)
	}
	if _, err := ReadGeneration(ctx, b, "g4"); err != nil {
		t.Fatalf("live generation removed: %v", err)
	}
	if _, err := ReadGeneration(ctx, b, "g3"); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("g3 should be gone 30 days later: %v", err)
	}
}
