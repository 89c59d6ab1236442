package pitr

import (
	"context"
	"errors"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/storage"
)

// logSource is where a plan's objects are read: the repository and the
// identities that decrypt them.
type logSource struct {
	b   storage.Backend
	ids []age.Identity
}

func (l logSource) scan(ctx context.Context, seg *catalog.Segment, fn func(*record) error) error {
	return scanSegment(ctx, l.b, l.ids, seg, fn)
}

// point is a place in a generation's chain: before the command at AOF
// position pos of chain[seg] (replication offset offset), with the time
// and end of the last command before it.
type point struct {
	seg     int
	pos     int64
	offset  int64
	prevMs  int64 // receive time of the last command before it
	prevEnd int64 // offset after the last command before it (0: not seen)
}

// cut is where a replay stops: before the first command a search matched,
// or before the MULTI of the transaction holding it (inTx).
type cut struct {
	point
	inTx  bool
	match *record // the matching command, its Args copied
}

// cursor walks the commands of a generation's chain in replay order (data
// commands only: no annotations, no synthetic SELECT, nothing outside a
// link's offsets) and remembers what a cut needs: where the open
// transaction began, and the time and end offset of the last command
// passed.
type cursor struct {
	gi      *genInfo
	log     logSource
	tx      bool
	multi   point
	prevMs  int64
	prevEnd int64
}

// seek returns the first command of gi's chain from segment start on for
// which stop is true, as a cut (nil when none), and the cursor that walked
// there: after a nil cut, its end is the point after the last command of
// the chain. The walk begins one segment earlier, to see the MULTI of a
// transaction crossing a segment boundary, and further back when it meets
// an EXEC whose MULTI it did not see.
func (gi *genInfo) seek(ctx context.Context, log logSource, start int, stop func(*record) bool) (*cut, *cursor, error) {
	for from := max(start-1, 0); ; from-- {
		c := &cursor{gi: gi, log: log}
		if from > 0 {
			c.prevMs = gi.chain[from-1].seg.LastMs
		}
		ct, err := c.walk(ctx, from, stop)
		if !errors.Is(err, errOrphanExec) {
			return ct, c, err
		}
		if from == 0 {
			return nil, nil, &SegmentError{Key: gi.chain[0].seg.Object.Key, Err: errors.New("EXEC without MULTI")}
		}
	}
}

// errOrphanExec ends a walk that met an EXEC whose MULTI is before it.
var errOrphanExec = errors.New("EXEC without MULTI in the walk")

// walk scans the chain from segment from until stop is true.
func (c *cursor) walk(ctx context.Context, from int, stop func(*record) bool) (*cut, error) {
	var found *cut
	for si := from; si < len(c.gi.chain) && found == nil; si++ {
		l := c.gi.chain[si]
		err := c.log.scan(ctx, l.seg, func(r *record) error {
			if r.Annotation || r.Synthetic || r.Offset < l.from || r.Offset >= l.to {
				return nil
			}
			here := point{seg: si, pos: r.AOFPos, offset: r.Offset, prevMs: c.prevMs, prevEnd: c.prevEnd}
			switch r.Name {
			case "MULTI":
				c.tx, c.multi = true, here
			case "EXEC":
				if !c.tx {
					return errOrphanExec
				}
			}
			if stop(r) {
				m := *r
				m.Args = r.command("", false).Args
				found = &cut{point: here, match: &m}
				if c.tx && r.Name != "MULTI" {
					found.point, found.inTx = c.multi, true
				}
				return errStop
			}
			if r.Name == "EXEC" {
				c.tx = false
			}
			c.prevMs, c.prevEnd = r.Ms, r.Offset+r.Size
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return nil, err
		}
	}
	return found, nil
}

// end is the point after the last command the cursor passed.
func (c *cursor) end() point { return point{seg: -1, prevMs: c.prevMs, prevEnd: c.prevEnd} }
