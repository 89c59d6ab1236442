package ship

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"redback/internal/catalog"
	"redback/internal/pack"
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
	if seg == nil || seg.start != 100 || seg.end != off || seg.commands != 4 {
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

func tickCmd(off int64, ms int64) replica.Command {
	return cmdAt(off, 0, "PUBLISH", catalog.TickChannel, strconv.FormatInt(ms, 10))
}

// tickAfter is a marker sent once the reply to the one at after came back.
func tickAfter(off, ms, after int64) replica.Command {
	return cmdAt(off, 0, "PUBLISH", catalog.TickChannel, catalog.Tick{Ms: ms, After: after}.Message())
}

// A time marker is stored as a "#TICK:<ms>" annotation, never as the
// PUBLISH: it counts in offsets like control traffic, the next command gets
// a checkpoint, and a segment that ends with one (or holds only markers)
// gets a trailing checkpoint.
func TestBuilder_TickMarkers(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_100)
	b := &builder{bufSize: 1024}
	b.reset("g", 100, 0)
	off := int64(100)
	feed := func(c replica.Command, at time.Time) {
		b.add(c, at)
		off = c.End()
	}
	feed(cmdAt(off, 0, "SET", "a", "1"), t0)
	feed(tickCmd(off, t0.UnixMilli()+40), t0.Add(41*time.Millisecond))
	afterTick := off
	feed(cmdAt(off, 0, "SET", "b", "2"), t0.Add(41*time.Millisecond))
	feed(tickCmd(off, t0.UnixMilli()+140), t0.Add(141*time.Millisecond))
	seg := b.cut()
	if err := checkRaw(seg); err != nil {
		t.Fatalf("checkRaw: %v\nAOF %q\nindex %v", err, seg.buf, seg.index)
	}
	text := string(seg.buf)
	if strings.Contains(text, "PUBLISH") || strings.Count(text, "#TICK:") != 2 ||
		!strings.Contains(text, "#TICK:1700000000140\r\n") || seg.commands != 2 || b.tickSeen != t0.UnixMilli()+140 || b.cmdsSeen != 2 {
		t.Fatalf("AOF %q commands %d tickSeen %d cmdsSeen %d", text, seg.commands, b.tickSeen, b.cmdsSeen)
	}
	if cp := seg.index[1]; cp.Offset() != afterTick || cp.AOFPos() != int64(strings.Index(text, "*3\r\n$3\r\nSET\r\n$1\r\nb")) {
		t.Errorf("checkpoint after the marker %v, want offset %d", cp, afterTick)
	}
	if last := seg.index[len(seg.index)-1]; last.Offset() != seg.end || last.AOFPos() != int64(len(seg.buf)) {
		t.Errorf("trailing checkpoint %v, want [%d %d ...]", last, len(seg.buf), seg.end)
	}
	// Markers only (an idle source).
	feed(tickCmd(off, t0.UnixMilli()+240), t0.Add(241*time.Millisecond))
	feed(cmdAt(off, 0, "PING"), t0.Add(300*time.Millisecond))
	feed(tickCmd(off, t0.UnixMilli()+340), t0.Add(341*time.Millisecond))
	seg = b.cut()
	if err := checkRaw(seg); err != nil || seg.commands != 0 || len(seg.index) != 1 || seg.index[0].Offset() != seg.end {
		t.Fatalf("markers only: %v\nAOF %q\nindex %v", err, seg.buf, seg.index)
	}
	// A PUBLISH on the channel inside a transaction is a command of the
	// transaction (the replay leaves it out).
	feed(cmdAt(off, 0, "MULTI"), t0.Add(time.Second))
	feed(tickCmd(off, t0.UnixMilli()+999), t0.Add(time.Second))
	feed(cmdAt(off, 0, "EXEC"), t0.Add(time.Second))
	seg = b.cut()
	if err := checkRaw(seg); err != nil || seg.commands != 3 || !strings.Contains(string(seg.buf), "PUBLISH") || strings.Contains(string(seg.buf), "#TICK") {
		t.Fatalf("in MULTI: %v\nAOF %q", err, seg.buf)
	}
}

// Markers re-sent inside a stretch of bounded times split it: the commands
// after a marker ran after its time, and those before it ran before the
// time of the next marker sent once its reply had come back (issue 23: a
// dropped link with the shipper alive loses no time information). A
// marker's own time is no upper bound: its PUBLISH ran later than that.
func TestBuilder_TicksBoundResent(t *testing.T) {
	t0 := int64(1_700_000_000_000)
	lo, hi := t0, t0+5000 // the last time known before the reconnect, the INFO reply
	now := time.UnixMilli(t0 + 6000)
	cmds := []replica.Command{}
	off := int64(0)
	add := func(c replica.Command) { cmds = append(cmds, c); off = c.End() }
	add(cmdAt(off, 0, "SET", "a", "1")) // (lo, t0+200]: before the PUBLISH stamped t0+100, which ran by t0+200
	add(tickCmd(off, t0+100))
	add(cmdAt(off, 0, "SET", "b", "2")) // (t0+100, t0+300]
	add(cmdAt(off, 0, "MULTI"))
	add(cmdAt(off, 0, "SET", "c", "3"))
	add(cmdAt(off, 0, "EXEC"))
	add(tickAfter(off, t0+200, t0+100))
	add(tickAfter(off, t0+300, t0+200))
	add(cmdAt(off, 0, "SET", "x", "1")) // (t0+300, hi]: the reply to t0+400 did not come back before a later marker
	add(tickAfter(off, t0+400, t0+300))
	add(cmdAt(off, 0, "SET", "d", "4")) // (t0+400, hi]: after the last marker
	until := off
	add(tickAfter(off, t0+5900, t0+350)) // live again; not after t0+400's reply
	add(cmdAt(off, 0, "SET", "e", "5"))  // its receive time
	b := &builder{bufSize: 4096}
	b.reset("g", 0, 0)
	b.bound(until, lo, hi)
	for _, c := range cmds {
		b.add(c, now)
	}
	seg := b.cut()
	if err := checkRaw(seg); err != nil {
		t.Fatalf("checkRaw: %v\nAOF %q\nindex %v", err, seg.buf, seg.index)
	}
	pos := func(s string) int64 { return int64(bytes.Index(seg.buf, []byte(s))) }
	want := []catalog.Checkpoint{
		{pos("*3\r\n$3\r\nSET\r\n$1\r\na"), cmds[0].Offset, t0 + 200, lo},
		{pos("*3\r\n$3\r\nSET\r\n$1\r\nb"), cmds[2].Offset, t0 + 300, t0 + 100},
		{pos("*3\r\n$3\r\nSET\r\n$1\r\nx"), cmds[8].Offset, hi, t0 + 300},
		{pos("*3\r\n$3\r\nSET\r\n$1\r\nd"), cmds[10].Offset, hi, t0 + 400},
		{pos("*3\r\n$3\r\nSET\r\n$1\r\ne"), cmds[12].Offset, now.UnixMilli(), 0},
	}
	if d := cmp.Diff(want, seg.index); d != "" {
		t.Errorf("index (-want +got):\n%s\nAOF %q", d, seg.buf)
	}
}

// known, the lower bound of what a reconnect re-sends, is never raised to
// the upper bound of a bounded stretch (commands re-sent later may have run
// before it), only to its lower bound, a marker or a receive time.
func TestBuilder_KnownStaysALowerBound(t *testing.T) {
	t0 := int64(1_700_000_000_000)
	b := &builder{bufSize: 1024}
	b.reset("g", 0, 0)
	a := cmdAt(0, 0, "SET", "a", "1")
	tk := tickCmd(a.End(), t0+100)
	c := cmdAt(tk.End(), 0, "SET", "c", "3")
	d := cmdAt(c.End(), 0, "SET", "d", "4")
	b.bound(c.End(), t0, t0+5000)
	now := time.UnixMilli(t0 + 6000)
	b.add(a, now)
	if b.known() != t0 {
		t.Fatalf("after a bounded command: known %d, want %d", b.known(), t0)
	}
	b.add(tk, now)
	b.add(c, now)
	if b.known() != t0+100 {
		t.Fatalf("after a marker: known %d, want %d", b.known(), t0+100)
	}
	b.add(d, now)
	if b.known() != now.UnixMilli() {
		t.Fatalf("after a live command: known %d, want %d", b.known(), now.UnixMilli())
	}
	seg := b.cut()
	if err := checkRaw(seg); err != nil {
		t.Fatal(err)
	}
	m := &catalog.Segment{LastMs: seg.lastMs, Index: seg.index, Object: catalog.Object{RawBytes: int64(len(seg.buf))}}
	if got := lowEnd(m); got != now.UnixMilli() {
		t.Errorf("lowEnd %d, want %d", got, now.UnixMilli())
	}
	m.Index = m.Index[:2] // ending inside the stretch
	if got := lowEnd(m); got != t0+100 {
		t.Errorf("lowEnd inside the stretch %d, want %d", got, t0+100)
	}
}

// Through a backlog (segments cut at SegmentSize until the spool is full,
// then all of them stored while the link is down) the builder reuses the buffers the uploader is done
// with: the segments of 40 MiB of commands use at most a spool's worth of
// buffers (counted by their backing arrays, not by timing), so none
// becomes garbage for the GC to let the heap grow twice over. Once
// storage is idle, trimFree lets go of all but one.
func TestBuilder_BufferReusedThroughBacklog(t *testing.T) {
	const spool, segSize = 16 << 10, 4 << 10 // the ratio of 16 MiB and 4 MiB
	up := newUploader(nil, pack.Options{}, 1, nil)
	up.free = make(chan []byte, spoolBuffers(spool, segSize))
	up.minFree, up.maxFree = segSize, 2*segSize
	b := &builder{recycled: up.free, bufSize: segSize + 1024}
	b.reset("g", 0, 0)
	arrays := map[*byte]bool{}
	var queued []*rawSegment
	val := strings.Repeat("v", 100)
	off := int64(0)
	for i := range 40 << 20 / 8 / 120 {
		c := cmdAt(off, 0, "SET", "k"+strconv.Itoa(i), val)
		b.add(c, time.UnixMilli(1_700_000_000_000))
		off = c.End()
		if b.pending() < segSize {
			continue
		}
		s := b.cut()
		arrays[unsafe.SliceData(s.buf)] = true
		queued = append(queued, s)
		if len(queued) == spool/segSize {
			// The spool is full: the shipper disconnects until all of it
			// is stored, then reads on.
			for _, s := range queued {
				up.recycle(s.buf)
			}
			queued = queued[:0]
		}
	}
	if max := spool/segSize + 2; len(arrays) > max {
		t.Errorf("%d segment buffers for a spool of %d segments, want at most %d", len(arrays), spool/segSize, max)
	}
	up.trimFree(1)
	if len(up.free) != 1 {
		t.Errorf("%d buffers kept after trimFree(1)", len(up.free))
	}
}
