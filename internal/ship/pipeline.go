package ship

// The pipeline: what the Shipper does with what a Source feeds it. The
// builder (under Shipper.mu) turns commands into segments; the cutter cuts
// them in time for the RPO, or stores an idle stretch as the heartbeat;
// the uploader (upload.go) stores them in order. The methods after the
// cutter's are the ones a Source calls.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"redback/internal/catalog"
	"redback/internal/replica"
)

// durable is the uploader's callback: gen is stored up to off.
func (s *Shipper) durable(gen string, off int64) {
	s.setStat(func(st *Stats) {
		if st.Generation == gen && st.DurableOffset > off {
			off = st.DurableOffset // a heartbeat stored already covers it
		}
		st.Generation, st.DurableOffset = gen, off
	})
	s.src.durable(gen, off)
}

// trimIdle is how long nothing must wait for storage before the segment
// buffers recycled through a backlog are let go (see uploader.trimFree):
// longer than a reconnect after a full spool takes, so that the next
// round of the backlog reuses them instead of allocating the spool anew.
const trimIdle = time.Second

// cutter cuts the segment being built so that what it holds is durable
// within about Interval of its arrival (the RPO). When nothing waits for
// storage it cuts once the segment is Interval old less the time storing
// a segment takes now (see uploader.storeTime) and the cutter's own tick,
// but not younger than Interval/2, and at once when the last cut is
// Interval ago: a write after a quiet spell is stored as fast as storage
// allows, still at most one segment per Interval while writes trickle.
// While segments wait for storage (a busy source, cut mostly at
// SegmentSize) it cuts at Interval: cutting earlier would only queue more
// segments behind the same storage. Once nothing has waited for storage
// for trimIdle it lets go of the recycled segment buffers but one.
func (s *Shipper) cutter(ctx context.Context) {
	tick := min(max(s.Interval/10, 10*time.Millisecond), 250*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	var idleSince time.Time // since when nothing waits for storage
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			store, upIdle := s.up.storeTime(), s.up.idle()
			switch {
			case !upIdle:
				idleSince = time.Time{}
			case idleSince.IsZero():
				idleSince = now
			case now.Sub(idleSince) >= trimIdle:
				s.up.trimFree(1)
			}
			var hb *catalog.Quiet
			s.mu.Lock()
			// Not while the primary re-sends what a reconnect missed: its
			// time markers narrow the times only within one segment.
			resending := s.b.unc.hi > 0 && s.b.next < s.b.unc.until
			switch age := s.b.age(now); {
			case s.src.heartbeats() && s.b.idle() && s.b.end-s.b.seg.start < idleSegment:
				hb = s.heartbeatDue(now)
			case s.b.seg == nil:
			case resending:
				if age >= 10*s.Interval {
					s.queueCut()
				}
			case cutDue(s.Interval, tick, age, now.Sub(s.lastCut), store, upIdle && !s.b.idle()):
				s.queueCut()
			}
			s.mu.Unlock()
			if hb != nil {
				s.heartbeat(ctx, hb, now)
			}
		}
	}
}

// heartbeatDue returns the heartbeat to store now, or nil. The segment
// being built is an idle stretch (s.b.idle): it is stored as a heartbeat
// (catalog.Quiet) instead of a segment, once it is Interval old (as soon
// as a segment would have been cut) and then every Heartbeat while it
// grows, when everything before it is stored. s.mu must be held.
func (s *Shipper) heartbeatDue(now time.Time) *catalog.Quiet {
	start := s.b.seg.start
	last := s.quiet
	if last.Generation == s.b.gen && last.From == start && last.Offset >= s.b.end {
		return nil // nothing new
	}
	if s.b.age(now) < s.Interval || last.Generation == s.b.gen && last.From == start && now.Sub(s.quietAt) < s.Heartbeat {
		return nil
	}
	s.st.Lock()
	stored := s.st.Generation == s.b.gen && s.st.DurableOffset >= start
	s.st.Unlock()
	if !stored || s.badSeg != nil {
		return nil
	}
	q := &catalog.Quiet{Format: catalog.FormatVersion, Generation: s.b.gen, From: start, Offset: s.b.end, UnixMs: s.b.maxMs}
	if s.src.live(s.b.gen) {
		// Streaming: the source sent nothing else until now.
		q.UnixMs = max(now.UnixMilli(), q.UnixMs)
	}
	return q
}

// heartbeat stores q (rewriting the generation's quiet.json), then makes
// its offset the durable one (and ACKs it with AckDurable). A failure is
// retried at the next due time.
func (s *Shipper) heartbeat(ctx context.Context, q *catalog.Quiet, now time.Time) {
	if err := catalog.PutJSON(ctx, s.Backend, catalog.QuietKey(q.Generation), q); err != nil {
		if ctx.Err() == nil {
			s.Log.Warn("could not store the heartbeat of an idle source; trying again", "key", catalog.QuietKey(q.Generation), "err", err)
		}
		return
	}
	s.mu.Lock()
	if s.b.gen == q.Generation {
		s.quiet, s.quietAt = *q, now
		s.b.setKnown(q.UnixMs) // later commands ran after it
	}
	s.mu.Unlock()
	s.Log.Debug("heartbeat stored", "gen", q.Generation, "offset", q.Offset)
	s.durable(q.Generation, q.Offset)
}

// cutDue decides whether the cutter, which looks every tick, cuts a
// segment that holds data and is age old, the last cut since ago, when
// storing a segment takes store now and flush says nothing waits for
// storage (see cutter).
func cutDue(interval, tick, age, since, store time.Duration, flush bool) bool {
	return age >= interval || flush && (age >= max(interval-store-tick, interval/2) || since >= interval)
}

func (s *Shipper) processed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.end
}

// waitDrained waits until the spool is empty; false when ctx ended.
func (s *Shipper) waitDrained(ctx context.Context) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if s.up.spool.Load() == 0 {
			s.up.mu.Lock()
			n := len(s.up.pending)
			s.up.mu.Unlock()
			if n == 0 {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// retryStorage runs f until it succeeds or ctx ends.
func (s *Shipper) retryStorage(ctx context.Context, what string, f func() error) error {
	backoff := 100 * time.Millisecond
	var lastLog time.Time
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, catalog.ErrLeaseLost) {
			return fmt.Errorf("%s: %w", what, err)
		}
		s.setStat(func(x *Stats) { x.LastError = what + ": " + err.Error() })
		if time.Since(lastLog) >= 10*time.Second {
			s.Log.Error("repository access failed; retrying", "op", what, "err", err)
			lastLog = time.Now()
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// endGeneration queues the end of gen at off (after its queued segments).
func (s *Shipper) endGeneration(g *catalog.Generation, off int64, reason string) {
	s.Log.Warn("ending generation", "gen", g.ID, "offset", off, "reason", reason)
	s.up.enqueue(&job{endGen: g, endOffset: off, endReason: reason})
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
	queued := s.up.spool.Load()
	return queued > 0 && queued+s.b.pending()+n > s.SpoolSize
}
