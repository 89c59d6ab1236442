package rdb

import (
	"context"
	"io"
)

// ctxCheckEvery is how many records ForEach reads between looks at its
// context: often enough to stop soon, rarely enough to cost nothing.
const ctxCheckEvery = 1024

// ForEach calls fn with every record to the end of the input. It returns
// nil at the end, and as they are: the Reader's error (such as a
// *FormatError), fn's, or ctx's (looked at every 1024 records). The record
// is valid only during the call.
func (r *Reader) ForEach(ctx context.Context, fn func(*Record) error) error {
	for i := 0; ; i++ {
		if i%ctxCheckEvery == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}
