package ship

import (
	"strconv"
	"time"

	"redback/internal/catalog"
	"redback/internal/replica"
	"redback/internal/resp"
)

// rawSegment is a cut segment waiting to be sealed and stored.
type rawSegment struct {
	gen       string
	start     int64
	end       int64
	dbAtStart int
	dbAtEnd   int
	buf       []byte
	index     []catalog.Checkpoint
	firstMs   int64
	lastMs    int64
	commands  int64
	received  time.Time // when its first byte was received (lag)
}

// builder turns the command stream into segments following the rules of
// catalog.Segment. It is not safe for concurrent use; the Shipper guards it.
type builder struct {
	gen string
	// end is the offset after the last complete unit appended; db is the
	// database there.
	end int64
	db  int
	// next is the offset after the last item added (inside an open MULTI
	// it runs ahead of end). A command that does not start there follows
	// bytes the builder never saw (AOF annotations) and gets a checkpoint.
	next int64

	seg     *rawSegment // nil until the first item after a cut
	inMulti bool
	multiMs int64
	saved   builderState // state before the open MULTI
	needCP  bool
	maxMs   int64 // latest receive time seen
	tsSec   int64
	cpMs    int64
	cpFrom  int64
	// unc, when set, bounds the time of the commands that end at or
	// before unc.until: they ran in (unc.lo, unc.hi] (see bound).
	unc       uncertainty
	multiFrom int64
	// free is a recycled buffer (keeps the heap flat under load); recycled
	// supplies buffers the uploader is done with; bufSize is the capacity
	// of a new buffer.
	free     []byte
	recycled chan []byte
	bufSize  int
}

// builderState is what a rollback of an unfinished MULTI restores.
type builderState struct {
	bufLen, indexLen    int
	commands            int64
	lastMs              int64
	needCP              bool
	tsSec, cpMs, cpFrom int64
	maxMs               int64
	hadSeg              bool
}

// uncertainty is a stretch of the stream whose receive times say nothing
// about when its commands ran: the backlog a primary re-sends after a
// reconnect (PSYNC +CONTINUE), or what it buffered while sending a full
// sync's snapshot. Those commands ran after lo (the last time known before
// the stretch) and at or before hi (when the source's offset was read as
// until, or later).
type uncertainty struct {
	until, lo, hi int64
}

// bound marks the commands ending at or before offset until as having run
// in (lo, hi] (unix ms): their checkpoints carry lo as from_ms and hi as
// their time.
func (b *builder) bound(until, lo, hi int64) {
	if until <= b.next || hi <= lo {
		b.unc = uncertainty{}
		return
	}
	b.unc = uncertainty{until: until, lo: lo, hi: hi}
}

// known is the latest time stamped so far (unix ms): after a reconnect,
// the re-sent commands ran after it.
func (b *builder) known() int64 { return b.maxMs }

// setKnown raises known to ms (the last time of the stored log, when a
// restarted shipper resumes it).
func (b *builder) setKnown(ms int64) { b.maxMs = max(b.maxMs, ms) }

// reset starts building generation gen at offset off in database db,
// dropping anything unfinished.
func (b *builder) reset(gen string, off int64, db int) {
	if b.seg != nil && b.free == nil {
		b.free = b.seg.buf
	}
	b.gen, b.end, b.db, b.next = gen, off, db, off
	b.seg, b.inMulti = nil, false
	b.unc = uncertainty{}
}

// isControl reports whether the command is control traffic that is counted
// in offsets but not written to the AOF.
func isControl(args [][]byte) bool {
	n := args[0]
	return eqFold(n, "PING") || eqFold(n, "REPLCONF")
}

func eqFold(b []byte, s string) bool { return resp.IsName(b, s) }

// pending reports the raw bytes held by the segment being built.
func (b *builder) pending() int64 {
	if b.seg == nil {
		return 0
	}
	return int64(len(b.seg.buf))
}

// add appends one command received at now. It reports whether a complete
// unit ended with it (a place where a segment may be cut).
func (b *builder) add(cmd replica.Command, now time.Time) (unitEnd bool) {
	return b.addAt(cmd, now, now.UnixMilli())
}

// addAt is add with the command's time (unix ms) given apart from now, the
// moment it was read (for lag and the cutter): tailing an AOF, the time
// comes from the file's #TS annotations.
func (b *builder) addAt(cmd replica.Command, now time.Time, unixMs int64) (unitEnd bool) {
	// Receive times never go backwards (a wall clock step would otherwise
	// break time ordering for point-in-time restore).
	var from int64
	if b.unc.hi > 0 {
		if cmd.End() <= b.unc.until {
			unixMs, from = b.unc.hi, b.unc.lo
		} else {
			b.unc = uncertainty{}
		}
	}
	ms := max(unixMs, b.maxMs)
	b.maxMs = ms
	if from >= ms {
		from = 0
	}
	if b.inMulti {
		ms, from = b.multiMs, b.multiFrom // a transaction is one unit with one time
	}
	jump := cmd.Offset != b.next
	b.next = cmd.End()
	if b.seg == nil {
		b.open(ms, now)
	} else if jump {
		b.needCP = true
	}
	s := b.seg
	prevLast := s.lastMs
	s.lastMs = ms
	if isControl(cmd.Args) {
		b.needCP = true
		if !b.inMulti {
			b.end, b.db = cmd.End(), cmd.DB
			return true
		}
		return false
	}
	isMulti := eqFold(cmd.Args[0], "MULTI")
	if isMulti && !b.inMulti {
		b.saved = builderState{bufLen: len(s.buf), indexLen: len(s.index), commands: s.commands, lastMs: prevLast,
			needCP: b.needCP, tsSec: b.tsSec, cpMs: b.cpMs, cpFrom: b.cpFrom, maxMs: ms, hadSeg: true}
		b.inMulti, b.multiMs, b.multiFrom = true, ms, from
	}
	if sec := ms / 1000; sec != b.tsSec {
		s.buf = append(s.buf, "#TS:"...)
		s.buf = strconv.AppendInt(s.buf, sec, 10)
		s.buf = append(s.buf, '\r', '\n')
		b.tsSec = sec
		b.needCP = true
	}
	if ms != b.cpMs || from != b.cpFrom {
		b.needCP = true
	}
	if b.needCP {
		s.index = append(s.index, catalog.Checkpoint{int64(len(s.buf)), cmd.Offset, ms, from})
		b.cpMs, b.cpFrom, b.needCP = ms, from, false
	}
	before := len(s.buf)
	s.buf = resp.AppendCommand(s.buf, cmd.Args...)
	if int64(len(s.buf)-before) != cmd.Len {
		// Not byte-identical to what the primary sent: the next command
		// needs its own checkpoint.
		b.needCP = true
	}
	s.commands++
	switch {
	case eqFold(cmd.Args[0], "EXEC"), eqFold(cmd.Args[0], "DISCARD"):
		b.inMulti = false
		b.end, b.db = cmd.End(), cmd.DB
		return true
	case !b.inMulti:
		b.end, b.db = cmd.End(), cmd.DB
		return true
	}
	return false
}

// skip accounts for stream bytes [off, end) that are not stored (the #TS
// annotations of a tailed AOF) at time unixMs: like control traffic they
// count in offsets, and the next command gets a checkpoint.
func (b *builder) skip(off, end int64, now time.Time, unixMs int64) {
	ms := max(unixMs, b.maxMs)
	b.maxMs = ms
	if b.inMulti {
		ms = b.multiMs
	}
	b.next = end
	if b.seg == nil {
		b.open(ms, now)
	}
	b.seg.lastMs = ms
	b.needCP = true
	if !b.inMulti {
		b.end = end
	}
}

// open starts a segment at offset b.end whose first item was received at
// ms.
func (b *builder) open(ms int64, now time.Time) {
	start := b.end
	buf := b.free[:0]
	b.free = nil
	if buf == nil {
		select {
		case buf = <-b.recycled:
		default:
			buf = make([]byte, 0, b.bufSize)
		}
	}
	// Only the SELECT: the first stored command writes its #TS line and
	// the first checkpoint where it starts. (The first item may be control
	// traffic that is not stored, such as the primary's PING; a checkpoint
	// written here would then point at whatever comes next, a #TS line.)
	buf = resp.AppendCommandString(buf, "SELECT", strconv.Itoa(b.db))
	b.seg = &rawSegment{
		gen: b.gen, start: start, dbAtStart: b.db, buf: buf,
		firstMs:  ms,
		received: now,
	}
	b.tsSec, b.cpMs, b.needCP = -1, ms, true
}

// rollback drops an unfinished MULTI (the connection broke inside it), so
// the segment ends at the last complete unit again.
func (b *builder) rollback() {
	if !b.inMulti || b.seg == nil {
		b.inMulti = false
		return
	}
	st := b.saved
	s := b.seg
	s.buf = s.buf[:st.bufLen]
	s.index = s.index[:st.indexLen]
	s.commands, s.lastMs = st.commands, st.lastMs
	b.needCP, b.tsSec, b.cpMs, b.cpFrom = st.needCP, st.tsSec, st.cpMs, st.cpFrom
	b.maxMs = st.maxMs
	b.inMulti = false
	b.next = b.end
}

// age is how long the segment being built has held data.
func (b *builder) age(now time.Time) time.Duration {
	if b.seg == nil {
		return 0
	}
	return now.Sub(b.seg.received)
}

// cut closes the segment being built and returns it, or nil when there is
// nothing to cut or a transaction is open.
func (b *builder) cut() *rawSegment {
	if b.seg == nil || b.inMulti {
		return nil
	}
	s := b.seg
	b.seg = nil
	s.end, s.dbAtEnd = b.end, b.db
	if s.end == s.start {
		// Only an empty item could have opened it; nothing to store.
		b.free = s.buf
		return nil
	}
	if cap(s.buf) > 2*len(s.buf)+64<<10 {
		// Keep the big buffer for the next segment; queue a right-sized
		// copy, so the spool's accounting (lengths) is its memory.
		small := make([]byte, len(s.buf))
		copy(small, s.buf)
		b.free, s.buf = s.buf, small
	}
	// A trailing checkpoint when the last bytes do not follow the last
	// checkpoint (skipped control traffic, a re-encoded command).
	// (A segment of control traffic only has no other checkpoint.)
	if len(s.index) == 0 {
		s.index = append(s.index, catalog.Checkpoint{int64(len(s.buf)), s.end, s.lastMs})
	} else if last := s.index[len(s.index)-1]; last.Offset()+int64(len(s.buf))-last.AOFPos() != s.end {
		s.index = append(s.index, catalog.Checkpoint{int64(len(s.buf)), s.end, s.lastMs})
	}
	return s
}
