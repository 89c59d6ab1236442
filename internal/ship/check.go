package ship

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/redisurl"
	"redback/internal/respconn"
)

// errBadSegment ends a connection after a built segment failed its check
// (see queueCut): the generation ends before it.
var errBadSegment = errors.New("a built segment failed its index check")

// checkRaw checks a cut segment's index against its bytes with the reader
// restores use (pitr.CheckSegmentBytes), before anything is stored.
func checkRaw(s *rawSegment) error {
	m := &catalog.Segment{Generation: s.gen, Start: s.start, End: s.end, FirstMs: s.firstMs, LastMs: s.lastMs,
		DBAtStart: s.dbAtStart, DBAtEnd: s.dbAtEnd, Index: s.index,
		Object: catalog.Object{Key: catalog.SegmentDataKey(s.gen, s.start, s.end, false)}}
	return pitr.CheckSegmentBytes(m, s.buf)
}

// queueCut cuts the segment being built and queues it for storage once its
// index checks out against its bytes. A segment that fails is never stored:
// it and everything after it are dropped, and badSeg makes the connection
// loop end the generation at the segment's start (a gap is never silent).
// s.mu must be held.
func (s *Shipper) queueCut() {
	seg := s.b.cut()
	if seg == nil {
		return
	}
	if s.badSeg != nil {
		return
	}
	if err := checkRaw(seg); err != nil {
		s.badSeg = &badSegment{gen: seg.gen, start: seg.start, dbAtStart: seg.dbAtStart, err: err}
		s.Log.Error("a built segment failed its index check and is not stored; the generation ends before it",
			"gen", seg.gen, "start", seg.start, "end", seg.end, "err", err)
		return
	}
	s.up.enqueue(&job{seg: seg})
	s.lastCut = time.Now()
}

// badSegment is a segment that failed checkRaw.
type badSegment struct {
	gen       string
	start     int64
	dbAtStart int
	err       error
}

func (b *badSegment) Error() string {
	return fmt.Sprintf("%v: generation %s at offset %d: %v", errBadSegment, b.gen, b.start, b.err)
}
func (b *badSegment) Unwrap() error { return errBadSegment }

// takeBad clears badSeg and, when it was set, rewinds the builder to the
// bad segment's start, so the next PSYNC re-reads the stream from there: a
// resumed stream rebuilds the segment, a full resync ends the generation
// there. s.mu must be held.
func (s *Shipper) takeBad() *badSegment {
	bad := s.badSeg
	if bad != nil {
		s.badSeg = nil
		s.b.rollback()
		s.b.reset(bad.gen, bad.start, bad.dbAtStart)
	}
	return bad
}

// boundResent reads the source's replication offset right after a sync
// (INFO replication on a connection of its own) and bounds the time of
// every command up to it: they ran after lo and before the reply, whenever
// the stream delivers them (the backlog re-sent after a reconnect, the
// writes buffered while a full sync's snapshot was sent). Without INFO
// (an ACL that forbids it) those commands keep their receive time, which
// may be later than when they ran; ship says so once.
func (r *replStream) boundResent(ctx context.Context, node *redisurl.URL, lo int64) {
	s := r.s
	off, hi, err := sourceOffset(ctx, node)
	if err != nil {
		if !r.warnedInfo {
			r.warnedInfo = true
			s.Log.Warn("cannot read the source's replication offset (INFO replication): commands re-sent after a reconnect are stamped with their receive time, which may be later than when they ran; allow INFO for exact point-in-time restores", "err", err)
		}
		return
	}
	s.bound(off, lo, hi)
}

// sourceOffset is the source's master_repl_offset and the time (unix ms)
// its reply arrived.
func sourceOffset(ctx context.Context, node *redisurl.URL) (int64, int64, error) {
	c, err := respconn.Dial(ctx, node, respconn.Options{Timeout: 10 * time.Second})
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	v, err := c.Do("INFO", "replication")
	if err != nil {
		return 0, 0, err
	}
	hi := time.Now().UnixMilli()
	in := respconn.ParseInfo(string(v.Str))
	if !strings.Contains(string(v.Str), "master_repl_offset:") {
		return 0, 0, errors.New("INFO replication has no master_repl_offset")
	}
	// 0 is an answer: a primary whose first replica is this one and that
	// has written nothing since its snapshot has nothing buffered.
	return in.ReplOffset, hi, nil
}
