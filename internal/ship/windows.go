package ship

import (
	"context"
	"time"

	"redback/internal/catalog"
	"redback/internal/storage"
)

// timeNow is time.Now (a seam for tests).
var timeNow = time.Now

// Window is the span of history one generation can restore to.
type Window struct {
	Generation string
	Ended      bool
	// FromMs is when the base snapshot was taken (unix ms), ToMs the receive
	// time of the last stored command or control message.
	FromMs, ToMs int64
	// FromOffset is the base snapshot's offset, ToOffset the end of the
	// contiguous stored log.
	FromOffset, ToOffset int64
	// Gaps lists holes or overlaps between stored segments (never expected;
	// anything after the first gap is not restorable from this base).
	Gaps []catalog.Gap
}

// Windows lists the restorable window of every generation, oldest first.
func Windows(ctx context.Context, b storage.Backend) ([]Window, error) {
	gens, err := catalog.ListGenerations(ctx, b)
	if err != nil {
		return nil, err
	}
	out := make([]Window, 0, len(gens))
	for _, g := range gens {
		segs, err := catalog.ListSegments(ctx, b, g.ID)
		if err != nil {
			return nil, err
		}
		w := Window{Generation: g.ID, Ended: g.Ended, FromMs: g.Created.UnixMilli(), ToMs: g.Created.UnixMilli(),
			FromOffset: g.StartOffset, ToOffset: g.StartOffset, Gaps: catalog.Contiguity(g, segs)}
		for _, s := range segs {
			if s.Start != w.ToOffset {
				break
			}
			w.ToOffset = s.End
			w.ToMs = max(w.ToMs, s.LastMs)
		}
		out = append(out, w)
	}
	return out, nil
}
