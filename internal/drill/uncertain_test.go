package drill

import (
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/pitr/pitrtest"
	"redback/internal/redistest"
	"redback/internal/storage/file"
)

// A drill at a time inside an interval where the log only bounds when
// commands ran drills the exact point before it and says so, naming the
// generation's uncertain stretches (issue 23).
func TestRun_PointInsideUncertainInterval(t *testing.T) {
	ctx := t.Context()
	b, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gen := catalog.NewGenerationID(time.Now(), "u1")
	base, _, err := pitrtest.EmptyBase(ctx, b, gen, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := base.EndTime.UnixMilli() + 1
	cmds := pitrtest.Cmds(0, t0, 50, "SET a 1", "SET b 1", "SET c 1")
	cmds[1].From, cmds[1].Ms = t0+1, t0+60 // b re-sent after a reconnect
	cmds[2].Ms = t0 + 100
	if _, err := pitrtest.Write(ctx, b, pitrtest.Generation{ID: gen, ReplID: "u1", BaseSnapshot: base.ID, Cmds: cmds}); err != nil {
		t.Fatal(err)
	}
	want := redistest.Start(t)
	if err := want.Client().Set(ctx, "a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rep, _, err := run(t, ctx, Options{Backend: b, At: time.UnixMilli(t0 + 30), SampleKeys: 100, RTOObjective: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(rep.Notes, "\n")
	if !rep.OK || rep.Point == nil || rep.Point.Kind != PointPITR || rep.AOFDigest != want.Digest(ctx) {
		t.Fatalf("report %+v checks %+v notes %s", rep.Point, rep.Checks, notes)
	}
	if !strings.Contains(notes, "the earliest side is drilled") || !strings.Contains(notes, "stretches where commands ran at times only known within an interval") {
		t.Errorf("notes:\n%s", notes)
	}
}
