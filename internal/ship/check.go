package ship

import (
	"errors"
	"fmt"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr"
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
