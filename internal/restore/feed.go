package restore

import (
	"context"
	"errors"
	"io"

	"redback/internal/rdb"
	"redback/internal/redisurl"
)

// Records is a source of key records that is not an RDB stream, such as a
// live server read with SCAN and DUMP (redback migrate).
type Records struct {
	Name string // for messages
	// Version is the RDB version of the payloads (the DUMP footer of the
	// source server): RESTORE payloads are labelled with it.
	Version int
	// DBs lists the source dbs holding keys (nil: unknown, then every
	// non-empty target db that could receive keys counts for
	// ConflictFail).
	DBs []int
	// Next returns the next record (rdb.RecordKey with DB, Key, Type,
	// Value without the type byte and footer, Expire, Idle, Freq; or
	// rdb.RecordFunction with FunctionCode), or io.EOF at the end. The
	// record and its slices stay valid until the following call. It is
	// called from one goroutine.
	Next func(ctx context.Context) (*rdb.Record, error)
	// Spooled, when set, gives the Spool holding the value of a record
	// with Streamed set that Next returned last (nil when it holds none,
	// as for a key the source filtered out). The restore sends the value
	// from there and releases the spool once done with it.
	Spooled func(rec *rdb.Record) *Spool
}

// FromRecords is ToRedis for a Records source: the same checks of the
// target, plan, filters, conflict handling, fallback conversion, batching,
// pipelining over Options.Parallel connections and progress (bytes are the
// value bytes handed over). A Next error is returned as a source error
// (a *DamagedSourceError when it says the data is damaged).
func FromRecords(ctx context.Context, src Records, u *redisurl.URL, o Options) (*Result, error) {
	return toTarget(ctx, u, o, func(_ context.Context, opts Options, tgt Target) (*feed, error) {
		plan, err := NewPlan(src.Version, src.DBs, tgt, opts.Filter, opts.Conflict)
		if err != nil {
			return nil, err
		}
		var read int64
		var spooled func(*rdb.Record) *Spool
		if src.Spooled != nil {
			spooled = func(rec *rdb.Record) *Spool {
				s := src.Spooled(rec).take(rec)
				if s != nil {
					read += s.Size()
				}
				return s
			}
		}
		next := func(ctx context.Context) (*rdb.Record, error) {
			rec, err := src.Next(ctx)
			switch {
			case errors.Is(err, io.EOF):
				return nil, io.EOF
			case err == nil && rec.Kind == rdb.RecordKey:
				read += int64(len(rec.Value)) + 1
			}
			return rec, err
		}
		return &feed{plan: plan, next: next, offset: func() int64 { return read }, source: src.Name,
			interrupted: "interrupted", failed: "read " + src.Name, spooled: spooled}, nil
	})
}
