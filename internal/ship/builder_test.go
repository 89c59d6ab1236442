package ship

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"redback/internal/catalog"
	"redback/internal/replica"
	"redback/internal/resp"
)

func cmdAt(off int64, db int, args ...string) replica.Command {
	a := make([][]byte, len(args))
	for i, s := range args {
		a[i] = []byte(s)
	}
	return replica.Command{Args: a, Offset: off, Len: resp.CommandLen(a...), DB: db}
}

func TestBuilder_IndexRules(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_500)
	b := &builder{bufSize: 1024}
	b.reset("g", 100, 0)
	feed := func(c replica.Command, at time.Time) int64 {
		b.add(c, at)
		return c.End()
	}
	off := int64(100)
	off = feed(cmdAt(off, 0, "SELECT", "0"), t0)
	setAt := off
	off = feed(cmdAt(off, 0, "SET", "a", "1"), t0)
	pingAt := off
	off = feed(cmdAt(off, 0, "PING"), t0)
	afterPing := off
	off = feed(cmdAt(off, 0, "SET", "b", "2"), t0)
	// a re-encoded command: the primary sent 3 more bytes than the canonical form
	odd := cmdAt(off, 0, "SET", "c", "3")
	odd.Len += 3
	off = feed(odd, t0)
	afterOdd := off
	off = feed(cmdAt(off, 0, "SET", "d", "4"), t0.Add(time.Second)) // new second: #TS + checkpoint
	// an unfinished MULTI is rolled back
	feed(cmdAt(off, 0, "MULTI"), t0.Add(time.Second))
	b.rollback()
	off = feed(cmdAt(off, 0, "REPLCONF", "GETACK", "*"), t0.Add(time.Second))
	seg := b.cut()
	if seg == nil || seg.start != 100 || seg.end != off || seg.commands != 5 {
		t.Fatalf("segment %+v", seg)
	}
	_ = pingAt
	text := string(seg.buf)
	if !strings.HasPrefix(text, "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n#TS:1700000000\r\n") || strings.Count(text, "#TS:") != 2 ||
		strings.Contains(text, "PING") || strings.Contains(text, "REPLCONF") || strings.Contains(text, "MULTI") {
		t.Fatalf("AOF %q", text)
	}
	pre := int64(len("*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n#TS:1700000000\r\n"))
	pos := func(s string) int64 { return int64(bytes.Index(seg.buf, []byte(s))) }
	ms := t0.UnixMilli()
	want := []catalog.Checkpoint{
		{pre, 100, ms},
		{pos("*3\r\n$3\r\nSET\r\n$1\r\nb"), afterPing, ms},
		{pos("#TS:1700000001") + int64(len("#TS:1700000001\r\n")), afterOdd, ms + 1000},
		{int64(len(seg.buf)), off, ms + 1000},
	}
	if d := cmp.Diff(want, seg.index); d != "" {
		t.Errorf("index (-want +got):\n%s", d)
	}
	if setAt != 100+int64(len("*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n")) {
		t.Fatal(setAt)
	}
}

func TestBuilder_NoCutInsideMulti(t *testing.T) {
	now := time.Now()
	b := &builder{bufSize: 1024}
	b.reset("g", 0, 2)
	off := int64(0)
	for _, c := range [][]string{{"MULTI"}, {"SET", "a", "1"}} {
		cmd := cmdAt(off, 2, c...)
		b.add(cmd, now)
		off = cmd.End()
	}
	if b.cut() != nil {
		t.Fatal("cut inside MULTI")
	}
	cmd := cmdAt(off, 2, "EXEC")
	if !b.add(cmd, now) {
		t.Fatal("EXEC does not end a unit")
	}
	seg := b.cut()
	if seg == nil || seg.end != cmd.End() || seg.dbAtStart != 2 || seg.dbAtEnd != 2 {
		t.Fatalf("segment %+v", seg)
	}
	if db, err := lastDB(bytes.NewReader(seg.buf), 2); err != nil || db != 2 {
		t.Fatal(db, err)
	}
}

// A segment whose first item is control traffic (the primary's PING),
// followed by a command in a later second, gets its first checkpoint on the
// command (issue 23, defect 1: it pointed at the command's #TS line).
func TestBuilder_OpenedByPing(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_900)
	b := &builder{bufSize: 1024}
	b.reset("g", 100, 0)
	off := int64(100)
	ping := cmdAt(off, 0, "PING")
	b.add(ping, t0)
	off = ping.End()
	incr := cmdAt(off, 0, "INCR", "n")
	b.add(incr, t0.Add(300*time.Millisecond)) // the next second
	seg := b.cut()
	if err := checkRaw(seg); err != nil {
		t.Fatalf("checkRaw: %v\nAOF %q\nindex %v", err, seg.buf, seg.index)
	}
	text := string(seg.buf)
	if strings.Count(text, "#TS:") != 1 || !strings.Contains(text, "#TS:1700000001\r\n*2\r\n$4\r\nINCR") {
		t.Errorf("AOF %q", text)
	}
	if first := seg.index[0]; first.Offset() != off || first.AOFPos() != int64(strings.Index(text, "*2\r\n$4\r\nINCR")) {
		t.Errorf("first checkpoint %v, want the INCR at offset %d", first, off)
	}

	// A segment of control traffic only: no #TS, one trailing checkpoint.
	b.add(cmdAt(incr.End(), 0, "PING"), t0.Add(2*time.Second))
	seg = b.cut()
	if err := checkRaw(seg); err != nil {
		t.Fatalf("checkRaw (PING only): %v\nAOF %q\nindex %v", err, seg.buf, seg.index)
	}
	if strings.Contains(string(seg.buf), "#TS") || len(seg.index) != 1 || seg.index[0].Offset() != seg.end {
		t.Errorf("PING-only segment: AOF %q index %v", seg.buf, seg.index)
	}
}

// queueCut never stores a segment whose index contradicts its bytes: it is
// dropped with everything after it, and the builder rewinds to its start.
func TestShipper_QueueCutRefusesBadIndex(t *testing.T) {
	s := &Shipper{Log: testLog(t)}
	s.b = builder{bufSize: 1024}
	s.b.reset("g", 100, 2)
	t0 := time.UnixMilli(1_700_000_000_000)
	c := cmdAt(100, 2, "SET", "a", "1")
	s.b.add(c, t0)
	s.b.seg.index[0][0]++ // not on a command start
	s.queueCut()          // s.up is nil: a queued segment would panic
	if s.badSeg == nil || s.badSeg.start != 100 {
		t.Fatalf("badSeg = %v", s.badSeg)
	}
	s.b.add(cmdAt(c.End(), 2, "SET", "b", "2"), t0)
	s.queueCut() // dropped too
	if bad := s.takeBad(); bad == nil || s.b.end != 100 || s.b.db != 2 || s.b.seg != nil {
		t.Fatalf("takeBad = %v; builder at %d db %d", bad, s.b.end, s.b.db)
	}
}

// Commands up to the offset bound names carry (lo, hi] in their
// checkpoints; the first command past it is stamped with its receive time.
func TestBuilder_Bound(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	b := &builder{bufSize: 1024}
	b.reset("g", 0, 0)
	a := cmdAt(0, 0, "SET", "a", "1")
	c := cmdAt(a.End(), 0, "SET", "c", "3")
	b.bound(c.End(), t0.UnixMilli()-5000, t0.UnixMilli()+100)
	b.add(a, t0.Add(200*time.Millisecond))
	b.add(c, t0.Add(200*time.Millisecond))
	d := cmdAt(c.End(), 0, "SET", "d", "4")
	b.add(d, t0.Add(300*time.Millisecond))
	seg := b.cut()
	if err := checkRaw(seg); err != nil {
		t.Fatal(err)
	}
	want := []catalog.Checkpoint{
		{int64(bytes.Index(seg.buf, []byte("*3\r\n$3\r\nSET\r\n$1\r\na"))), 0, t0.UnixMilli() + 200, t0.UnixMilli() - 5000},
		{int64(bytes.Index(seg.buf, []byte("*3\r\n$3\r\nSET\r\n$1\r\nd"))), c.End(), t0.UnixMilli() + 300, 0},
	}
	want[0][2] = t0.UnixMilli() + 100 // hi, not the receive time
	if diff := cmp.Diff(want, seg.index); diff != "" {
		t.Errorf("index (-want +got):\n%s", diff)
	}
}
