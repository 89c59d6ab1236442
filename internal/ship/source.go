package ship

import (
	"context"
	"time"

	"redback/internal/catalog"
	"redback/internal/replica"
)

// A Source is what a Shipper ships from: the replication stream of a
// server (replStream) or a multi-part AOF directory (aofTail). The Shipper
// owns one pipeline, builder → cutter → uploader (and the heartbeat of an
// idle source); a source feeds it through the pipeline's methods below:
//
//   - a generation: newGeneration when a base snapshot is stored (a full
//     sync, an AOF base) or a failover forks the history, resumeAt when a
//     restart continues a stored one, endGeneration when it ends;
//   - what it reads, in offset order: add for a command (its offset,
//     length, database and time), skip for stream bytes that are not
//     stored (AOF #TS annotations); a time marker or control traffic is a
//     command the builder recognises;
//   - cut at a boundary (a lost link, a rewrite), rollback of an
//     unfinished MULTI, spoolFull before reading on.
//
// The pipeline asks back only what the Shipper cannot know: whether the
// source is streaming a generation right now (a heartbeat may then be
// stamped with the current time), whether idle stretches are stored as
// heartbeats at all, and it tells the source what became durable (for
// REPLCONF ACK). A source keeps its own state (the replication link, the
// files being read) under its own lock; the pipeline's lock (Shipper.mu)
// guards only the builder and what is cut from it.
type Source interface {
	// feed reads the source into the pipeline until ctx ends. It returns
	// an error only for what retrying cannot fix.
	feed(ctx context.Context) error
	// heartbeats reports whether an idle stretch (control traffic and time
	// markers only) is stored as the generation's heartbeat instead of a
	// segment.
	heartbeats() bool
	// live reports whether gen is being streamed at this moment: the
	// source sent nothing else until now. Called with Shipper.mu held.
	live(gen string) bool
	// durable says that gen is stored up to off.
	durable(gen string, off int64)
}

// source picks the Source the exported fields describe.
func (s *Shipper) source() Source {
	if s.AOFDir != "" {
		return &aofTail{s: s}
	}
	return &replStream{s: s}
}

// newGeneration starts building generation gen at offset off (database 0,
// as after a full sync or a promotion) and queues its start, so it is
// durable at off once what was queued before it is stored. base, when set,
// is its base snapshot (kept by Pinned).
func (s *Shipper) newGeneration(gen string, off int64, base string) {
	s.mu.Lock()
	s.b.reset(gen, off, 0)
	s.mu.Unlock()
	s.generations.Add(1)
	if base != "" {
		s.base.Store(&base)
	}
	s.queueStart(gen, off)
	s.setStat(func(x *Stats) { x.PrimaryOffset = off })
}

// queueStart queues the start of gen at off: durable once what was queued
// before it is stored.
func (s *Shipper) queueStart(gen string, off int64) {
	s.up.enqueue(&job{startGen: gen, startOff: off})
}

// resumeAt continues building the stored generation g at offset end in
// database db; what follows ran after knownMs. q, when set, is the
// heartbeat stored after end: what follows ran after it too, and the
// generation is durable to its offset.
func (s *Shipper) resumeAt(g *catalog.Generation, end int64, db int, knownMs int64, q *catalog.Quiet) {
	durable := end
	s.mu.Lock()
	s.b.reset(g.ID, end, db)
	s.b.setKnown(knownMs)
	if q != nil {
		s.b.setKnown(q.UnixMs)
		s.quiet, s.quietAt, durable = *q, time.Now(), q.Offset
	}
	s.mu.Unlock()
	s.setStat(func(x *Stats) {
		x.Generation, x.DurableOffset, x.PrimaryOffset = g.ID, durable, end
	})
	s.base.Store(&g.BaseSnapshot)
}

// add appends cmd, read at now and run at unixMs, and cuts the segment
// once it holds SegmentSize at the end of a unit. It reports whether a
// unit (a command, a whole MULTI ... EXEC) ended with it, and whether the
// segment then held more than the spool (a unit larger than SpoolSize).
func (s *Shipper) add(cmd replica.Command, now time.Time, unixMs int64) (unitEnd, oversized bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unitEnd = s.b.addAt(cmd, now, unixMs)
	oversized = unitEnd && s.b.pending() > s.SpoolSize
	if unitEnd && s.b.pending() >= s.SegmentSize {
		s.queueCut()
	}
	return unitEnd, oversized
}

// skip accounts for stream bytes [off, end) that are not stored, read at
// now, at time unixMs (see builder.skip).
func (s *Shipper) skip(off, end int64, now time.Time, unixMs int64) {
	s.mu.Lock()
	s.b.skip(off, end, now, unixMs)
	s.mu.Unlock()
}

// queueCutNow cuts the segment being built (see queueCut).
func (s *Shipper) queueCutNow() {
	s.mu.Lock()
	s.queueCut()
	s.mu.Unlock()
}

// interrupted closes what a stream that ended left: an unfinished MULTI is
// dropped and the segment cut. When stopping (Run's context ended while
// streaming) an idle stretch is left to the final heartbeat instead.
func (s *Shipper) interrupted(stopping bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stopping {
		s.liveUntil = time.Now()
	}
	s.b.rollback()
	if !stopping || !s.b.idle() {
		// (A lost link cuts an idle stretch too: a full resync next
		// would end the generation at its end.)
		s.queueCut()
	}
}

// rewind takes the segment that failed its check, if any, and rewinds the
// builder to its start (see takeBad).
func (s *Shipper) rewind() *badSegment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.takeBad()
}

// pending is the raw bytes held by the segment being built.
func (s *Shipper) pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.pending()
}

// known is the latest time known to be before what the source brings next
// (see builder.known); db the database at the end of what was read.
func (s *Shipper) known() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.known()
}

func (s *Shipper) db() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.db
}

// bound bounds the times of what the source re-sends (see builder.bound).
func (s *Shipper) bound(until, lo, hi int64) {
	s.mu.Lock()
	s.b.bound(until, lo, hi)
	s.mu.Unlock()
}

// seen is the time of the last time marker read and the count of
// commands read (see builder.tickSeen).
func (s *Shipper) seen() (tick, cmds int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.tickSeen, s.b.cmdsSeen
}

// rollback drops an unfinished MULTI from the segment being built.
func (s *Shipper) rollback() {
	s.mu.Lock()
	s.b.rollback()
	s.mu.Unlock()
}

// cut drops an unfinished MULTI, cuts the segment being built and returns
// the offset after the last complete unit.
func (s *Shipper) cut() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.rollback()
	s.queueCut()
	return s.b.end
}

// restartTimes forgets the latest time seen: a new generation that
// re-reads files orders its own times only.
func (s *Shipper) restartTimes() {
	s.mu.Lock()
	s.b.maxMs = 0
	s.mu.Unlock()
}

// failed is the segment that failed its check (see queueCut), or nil.
func (s *Shipper) failed() *badSegment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.badSeg
}

// spoolFull reports whether n more bytes would overflow the spool while
// something waits for storage.
func (s *Shipper) spoolFull(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spoolFullLocked(n)
}

// spoolFullLocked is spoolFull with s.mu held.
func (s *Shipper) spoolFullLocked(n int64) bool {
	queued := s.up.spool.Load()
	return queued > 0 && queued+s.b.pending()+n > s.SpoolSize
}
