package drill

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr/pitrtest"
	"redback/internal/rdb"
	"redback/internal/redistest"
	"redback/internal/snapshot"
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
	var buf bytes.Buffer
	w, err := rdb.NewWriter(&buf, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	gen := catalog.NewGenerationID(time.Now(), "u1")
	base, err := snapshot.Store(ctx, bytes.NewReader(buf.Bytes()), snapshot.Options{Backend: b, Method: "ship", Generation: gen})
	if err != nil {
		t.Fatal(err)
	}
	t0 := base.EndTime.UnixMilli() + 1
	var cmds []pitrtest.Cmd
	off := int64(0)
	for i, k := range []string{"a", "b", "c"} {
		c := pitrtest.Cmd{Args: [][]byte{[]byte("SET"), []byte(k), []byte("1")}, Offset: off, Ms: t0 + int64(i)*50}
		off += c.Len()
		cmds = append(cmds, c)
	}
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
