package pitr

import (
	"context"
	"errors"
	"strings"
	"time"

	"redback/internal/catalog"
	"redback/internal/storage"
)

// Filter selects the commands Log returns.
type Filter struct {
	From, To time.Time // receive time bounds, inclusive (zero: open)
	Command  string    // command name, case-insensitive ("" any)
	// Generation restricts the listing to one generation ("" any).
	Generation string
}

// Log calls fn for every stored command that matches f, generation by
// generation (oldest first) in offset order, with its receive time, offset,
// db, generation and arguments. SELECT is not listed (the db is a field),
// nor redback's time markers; MULTI and EXEC are. Segments outside the time bounds are not read. The
// Command's Args are valid only during the call. Returning an error from fn
// stops the listing and is returned.
func Log(ctx context.Context, b storage.Backend, f Filter, o Options, fn func(*Command) error) error {
	gens, err := loadGens(ctx, b)
	if err != nil {
		return err
	}
	var fromMs, toMs int64 = 0, 1<<63 - 1
	if !f.From.IsZero() {
		fromMs = f.From.UnixMilli()
	}
	if !f.To.IsZero() {
		toMs = f.To.UnixMilli()
	}
	name := strings.ToUpper(f.Command)
	errDone := errors.New("done")
	for _, gi := range gens {
		if f.Generation != "" && gi.g.ID != f.Generation {
			continue
		}
		covered := gi.g.StartOffset
		for _, seg := range gi.segs {
			if seg.LastMs < fromMs || seg.FirstMs > toMs || seg.End <= covered {
				covered = max(covered, seg.End)
				continue
			}
			from := covered
			covered = max(covered, seg.End)
			inTx := false
			var c Command
			err := scanSegment(ctx, b, o.Identities, seg, func(r *record) error {
				if r.Annotation || r.Synthetic || r.Name == "SELECT" || catalog.IsMarkerPublish(r.Args) {
					return nil
				}
				if r.Ms > toMs {
					return errDone
				}
				if r.Name == "MULTI" {
					inTx = true
				}
				tx := inTx && r.Name != "MULTI"
				if r.Name == "EXEC" {
					inTx = false
				}
				if r.Offset < from || r.Ms < fromMs || (name != "" && r.Name != name) {
					return nil
				}
				c = Command{Generation: gi.g.ID, Offset: r.Offset, Size: r.Size, Time: msTime(r.Ms), DB: r.DB, Name: r.Name, Args: r.Args, InTransaction: tx,
					Lost: gi.lost >= 0 && r.Offset >= gi.lost}
				if r.From > 0 {
					c.TimeFrom = msTime(r.From)
				}
				return fn(&c)
			})
			if errors.Is(err, errDone) {
				break
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}
