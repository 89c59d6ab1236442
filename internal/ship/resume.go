package ship

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"redback/internal/aof"
	"redback/internal/catalog"
	"redback/internal/pack"
)

// endNow writes gen's manifest as ended.
func (s *Shipper) endNow(ctx context.Context, g *catalog.Generation, off int64, reason string) error {
	e := *g
	e.Ended, e.EndOffset, e.EndReason = true, off, reason
	e.EndTime = time.Now().UTC()
	s.Log.Warn("ending generation", "gen", g.ID, "offset", off, "reason", reason)
	return catalog.PutJSON(ctx, s.Backend, catalog.GenerationKey(g.ID), &e)
}

// storedEnd is the end of gen's contiguous stored log, the database in
// effect there and the last time it holds (unix ms).
func (s *Shipper) storedEnd(ctx context.Context, g *catalog.Generation) (end int64, db int, known bool, lastMs int64, err error) {
	segs, err := catalog.ListSegments(ctx, s.Backend, g.ID)
	if err != nil {
		return 0, 0, false, 0, err
	}
	end = g.StartOffset
	lastMs = g.Created.UnixMilli()
	var last *catalog.Segment
	for _, sg := range segs {
		if sg.Start != end {
			break // a gap: only the prefix before it is usable
		}
		end, last = sg.End, sg
		lastMs = max(lastMs, lowEnd(sg))
	}
	if last == nil {
		return end, 0, true, lastMs, nil // after a full sync the primary sends SELECT first
	}
	var m catalog.Segment
	m.DBAtEnd = -1
	if err := catalog.GetJSON(ctx, s.Backend, catalog.SegmentKey(g.ID, last.Start, last.End), &m); err != nil {
		return 0, 0, false, 0, err
	}
	if m.DBAtEnd >= 0 {
		return end, m.DBAtEnd, true, lastMs, nil
	}
	db, err = s.scanDB(ctx, last)
	if errors.Is(err, errNoIdentity) {
		return end, 0, false, lastMs, nil
	}
	return end, db, err == nil, lastMs, err
}

// lowEnd is the latest time known to be before what follows segment sg:
// its last time, or, when its last commands were only bounded (re-sent
// after a reconnect), the lower bound of their interval (commands after
// them may have run before its upper bound).
func lowEnd(sg *catalog.Segment) int64 {
	low := sg.LastMs
	for _, cp := range sg.Index {
		if cp.AOFPos() >= sg.Object.RawBytes && sg.Object.RawBytes > 0 {
			break // the trailing checkpoint: no command follows it
		}
		if cp.FromMs() > 0 {
			low = cp.FromMs()
		} else {
			low = sg.LastMs
		}
	}
	return low
}

var errNoIdentity = errors.New("segment is encrypted and no identity is configured")

// scanDB reads a segment and returns the database at its end.
func (s *Shipper) scanDB(ctx context.Context, sg *catalog.Segment) (int, error) {
	if sg.Object.Encryption != "" && len(s.Identities) == 0 {
		return 0, errNoIdentity
	}
	rc, err := s.Backend.Get(ctx, sg.Object.Key, 0, -1)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", sg.Object.Key, err)
	}
	defer rc.Close()
	pr, err := pack.NewReader(rc, pack.Expect{Key: sg.Object.Key, Size: sg.Object.StoredBytes, SHA256: sg.Object.SHA256,
		Encrypted: sg.Object.Encryption != ""}, s.Identities)
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	return lastDB(pr, sg.DBAtStart)
}

// lastDB follows SELECT through an AOF as the replication stream does.
func lastDB(r io.Reader, db int) (int, error) {
	ar := aof.NewReader(r, aof.ReaderOptions{})
	pre := db
	for {
		rec, err := ar.Next()
		if err == io.EOF {
			return db, nil
		}
		if err != nil {
			return 0, err
		}
		if rec.Kind != aof.RecordCommand || len(rec.Args) == 0 {
			continue
		}
		switch {
		case eqFold(rec.Args[0], "SELECT") && len(rec.Args) == 2:
			fmt.Sscan(string(rec.Args[1]), &db)
		case eqFold(rec.Args[0], "MULTI"):
			pre = db
		case eqFold(rec.Args[0], "DISCARD"):
			db = pre
		}
	}
}
