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
	// lowMs is the latest time known to be before whatever the stream
	// brings next: a receive time, a time marker, the lower bound of a
	// bounded stretch (never its upper bound, which later re-sent
	// commands may precede).
	lowMs  int64
	tsSec  int64
	cpMs   int64
	cpFrom int64
	// unc, when set, bounds the time of the commands that end at or
	// before unc.until: they ran in (unc.lo, unc.hi] (see bound).
	unc       uncertainty
	multiFrom int64
	// uncIdx is where, in the segment being built, the checkpoints bounded
	// by unc.lo begin: a time marker re-sent inside the stretch lowers
	// their upper bound to its time (see tick).
	uncIdx int
	// lastTick is the last marker of a bounded stretch, waiting for the
	// next one to bound what came before it (see tick).
	lastTick pendingTick
	// tickSeen is the time of the last time marker seen; cmdsSeen counts
	// the commands seen (not markers, not control traffic): the marker
	// publisher slows down while the source is idle.
	tickSeen, cmdsSeen int64
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
	maxMs, lowMs        int64
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
	b.uncIdx = 0
	if b.seg != nil {
		b.uncIdx = len(b.seg.index)
	}
}

// known is the latest time known to be before what the stream brings
// next (unix ms): after a reconnect, the re-sent commands ran after it.
func (b *builder) known() int64 { return b.lowMs }

// setKnown raises known to ms (the last time of the stored log, when a
// restarted shipper resumes it); later times are stamped no earlier.
func (b *builder) setKnown(ms int64) { b.maxMs, b.lowMs = max(b.maxMs, ms), max(b.lowMs, ms) }

// reset starts building generation gen at offset off in database db,
// dropping anything unfinished.
func (b *builder) reset(gen string, off int64, db int) {
	if b.seg != nil && b.free == nil {
		b.free = b.seg.buf
	}
	b.gen, b.end, b.db, b.next = gen, off, db, off
	b.seg, b.inMulti = nil, false
	b.unc = uncertainty{}
	b.lastTick = pendingTick{}
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
	if from > 0 {
		b.lowMs = max(b.lowMs, from)
	} else {
		b.lowMs = max(b.lowMs, ms)
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
	if tk, ok := catalog.TickOf(cmd.Args); ok && !b.inMulti {
		// A time marker: stored as an annotation, not as a command (it is
		// never replayed); like control traffic it counts in offsets.
		s.buf = catalog.AppendTick(s.buf, tk.Ms)
		b.needCP = true
		b.tick(tk, from)
		b.end, b.db = cmd.End(), cmd.DB
		return true
	}
	b.cmdsSeen++
	if s.commands == 0 && !b.inMulti && !eqFold(cmd.Args[0], "SELECT") {
		// The first data after an idle stretch (control traffic, time
		// markers): the segment's wait for its cut starts now.
		s.received = now
	}
	isMulti := eqFold(cmd.Args[0], "MULTI")
	if isMulti && !b.inMulti {
		b.saved = builderState{bufLen: len(s.buf), indexLen: len(s.index), commands: s.commands, lastMs: prevLast,
			needCP: b.needCP, tsSec: b.tsSec, cpMs: b.cpMs, cpFrom: b.cpFrom, maxMs: ms, lowMs: b.lowMs, hadSeg: true}
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
	if !eqFold(cmd.Args[0], "SELECT") {
		// (A SELECT alone changes no data: the primary sends one before
		// the first time marker of a stream, which is no command.)
		s.commands++
	}
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

// tick takes a time marker. What follows a marker in the stream ran after
// its PUBLISH, so after its time: inside a stretch of bounded times (from >
// 0: the stream re-sent after a reconnect, or buffered during a full sync)
// the next checkpoints get the marker's time as their lower bound. What
// precedes it ran before its PUBLISH, which ran some time after the
// marker's time; the next marker whose After names this one was stamped
// once its reply had come back, so its time bounds them from above: then,
// and only then, the checkpoints before this marker that are still bounded
// by (lo, hi] get that time as their upper bound. (Those of a segment
// already cut keep the wider bound: still true, only looser.)
func (b *builder) tick(tk catalog.Tick, from int64) {
	b.tickSeen = max(b.tickSeen, tk.Ms)
	b.lowMs = max(b.lowMs, tk.Ms) // what follows ran after the PUBLISH
	if p := b.lastTick; p.seg != nil && p.seg == b.seg && tk.After == p.ms && tk.Ms < p.hi {
		idx := b.seg.index
		for i := p.from; i < min(p.to, len(idx)); i++ {
			if idx[i].FromMs() == p.lo && idx[i].UnixMs() == p.hi {
				idx[i][2] = tk.Ms
			}
		}
	}
	b.lastTick = pendingTick{}
	if from <= 0 || from != b.unc.lo || tk.Ms <= b.unc.lo {
		return
	}
	idx := b.seg.index
	b.lastTick = pendingTick{seg: b.seg, from: min(b.uncIdx, len(idx)), to: len(idx), lo: b.unc.lo, hi: b.unc.hi, ms: tk.Ms}
	b.unc.lo = min(tk.Ms, b.unc.hi)
	b.uncIdx = len(idx)
}

// pendingTick is the last marker seen inside a bounded stretch: the
// checkpoints [from, to) of seg, bounded by (lo, hi], lie before it, and
// the next marker whose After is ms narrows hi (see tick).
type pendingTick struct {
	seg        *rawSegment
	from, to   int
	lo, hi, ms int64
}

// skip accounts for stream bytes [off, end) that are not stored (the #TS
// annotations of a tailed AOF) at time unixMs: like control traffic they
// count in offsets, and the next command gets a checkpoint.
func (b *builder) skip(off, end int64, now time.Time, unixMs int64) {
	ms := max(unixMs, b.maxMs)
	b.maxMs = ms
	if b.inMulti {
		ms = b.multiMs
	} else {
		b.lowMs = max(b.lowMs, ms)
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
	b.uncIdx = 0
	b.lastTick = pendingTick{}
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
	b.maxMs, b.lowMs = st.maxMs, st.lowMs
	b.inMulti = false
	b.next = b.end
}

// idle reports whether the segment being built holds control traffic and
// time markers only (no command that changes data): the stream of an idle
// source, which is not cut into segments of its own (see
// Shipper.heartbeat).
func (b *builder) idle() bool {
	return b.seg != nil && b.seg.commands == 0 && !b.inMulti
}

// drop forgets the segment being built when shipping stops and a
// heartbeat records it instead (an idle stretch): the next Run resumes
// from the stored end and re-reads the stretch.
func (b *builder) drop() {
	if b.seg != nil && b.free == nil {
		b.free = b.seg.buf
	}
	b.seg = nil
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
	// checkpoint (skipped control traffic, a time marker, a re-encoded
	// command). (A segment of control traffic only has no other
	// checkpoint.)
	if len(s.index) == 0 || b.needCP {
		s.index = append(s.index, catalog.Checkpoint{int64(len(s.buf)), s.end, s.lastMs})
	} else if last := s.index[len(s.index)-1]; last.Offset()+int64(len(s.buf))-last.AOFPos() != s.end {
		s.index = append(s.index, catalog.Checkpoint{int64(len(s.buf)), s.end, s.lastMs})
	}
	return s
}
