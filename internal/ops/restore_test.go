package ops_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/ops"
	"redback/internal/pack"
	"redback/internal/pitr"
	"redback/internal/pitr/pitrtest"
	"redback/internal/restore"
	"redback/internal/storage/mem"
)

// One entry point restores every kind of point into every file
// destination, and says what it decided before writing.
func TestRestore_Points(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	gen := catalog.NewGenerationID(time.Now(), "r1")
	base, raw, err := pitrtest.EmptyBase(ctx, b, gen, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := base.EndTime.UnixMilli() + 1
	cmds := pitrtest.Cmds(0, t0, 10, "SET a 1", "SET b 1", "SET c 1")
	if _, err := pitrtest.Write(ctx, b, pitrtest.Generation{ID: gen, ReplID: "r1", BaseSnapshot: base.ID, Cmds: cmds}); err != nil {
		t.Fatal(err)
	}
	rdbPath := filepath.Join(t.TempDir(), "in.rdb")
	if err := os.WriteFile(rdbPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		pt   ops.RestorePoint
		log  bool
	}{
		{"newest snapshot", ops.LatestSnapshot(), false},
		{"snapshot by id", ops.SnapshotPoint(base.ID), false},
		{"file", ops.FilePoint(rdbPath), false},
		{"time", ops.LogPoint(pitr.AtTime(time.UnixMilli(t0 + 10))), true},
		{"offset", ops.LogPoint(pitr.AtOffset(cmds[1].Offset)), true},
		{"before command", ops.LogPoint(pitr.BeforeCommand(pitr.CommandMatch{Name: "SET", KeyPattern: "c"})), true},
		{"newest durable point", ops.LogPoint(pitr.Latest()), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := ops.Destination{Dir: t.TempDir()}
			decided := 0
			res, err := ops.Restore(ctx, b, tt.pt, dst, ops.RestoreParams{Decided: func(d *ops.RestoreDecision) {
				decided++
				if (d.Plan != nil) != tt.log {
					t.Errorf("decision %+v", d)
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if decided != 1 || (res.Log != nil) != tt.log || (res.Snapshot != nil) == tt.log {
				t.Fatalf("decided %d times, result %+v", decided, res)
			}
			want := "dump.rdb"
			if tt.log {
				want = filepath.Join(pitr.AOFDirName, pitr.ManifestName)
			}
			if _, err := os.Stat(filepath.Join(dst.Dir, want)); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Nothing decided: no result, the planner's error.
	res, err := ops.Restore(ctx, b, ops.LogPoint(pitr.AtOffset(1<<40)), ops.Destination{Dir: t.TempDir()}, ops.RestoreParams{})
	if res != nil || !errors.Is(err, pitr.ErrTargetNotCovered) {
		t.Fatalf("an offset past the log: %+v %v", res, err)
	}
	// An existing file destination is refused unless forced.
	dst := ops.Destination{RDB: rdbPath}
	if _, err := ops.Restore(ctx, b, ops.LatestSnapshot(), dst, ops.RestoreParams{}); !errors.Is(err, restore.ErrExists) {
		t.Fatalf("existing --to-rdb: %v", err)
	}
}
