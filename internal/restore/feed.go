package restore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"

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
}

// FromRecords is ToRedis for a Records source: the same checks of the
// target, plan, filters, conflict handling, fallback conversion, batching,
// pipelining over Options.Parallel connections and progress (bytes are the
// value bytes handed over). A Next error is returned as a source error
// (a *SourceError when it says the data is damaged).
func FromRecords(ctx context.Context, src Records, u *redisurl.URL, o Options) (*Result, error) {
	opts := o.withDefaults()
	start := opts.Now()
	res := &Result{maxListed: opts.MaxListed}
	if u.DB != 0 {
		return res, fmt.Errorf("target URL %s names db %d: keys go to their source db; use --map-db FROM:%d instead", u.Redacted(), u.DB, u.DB)
	}
	ctl, err := dial(ctx, u, opts.Timeout)
	if err != nil {
		return res, err
	}
	defer ctl.close()
	tgt, err := probe(ctl)
	if err != nil {
		return res, err
	}
	plan, err := NewPlan(src.Version, src.DBs, tgt, opts.Filter, opts.Conflict)
	if err != nil {
		return res, err
	}
	x := &executor{opts: opts, plan: plan, res: res, nowMs: start.UnixMilli(), curDB: -1}
	var id [4]byte
	_, _ = rand.Read(id[:])
	x.tmpID = "redback:restore-tmp:" + hex.EncodeToString(id[:]) + ":"
	x.conv.x = x
	x.ctl = ctl

	g, gctx := errgroup.WithContext(ctx)
	nb := opts.Parallel*4 + 2
	x.free = make(chan *batch, nb)
	for range nb {
		x.free <- &batch{}
	}
	for range opts.Parallel {
		c, err := dial(gctx, u, opts.Timeout)
		if err != nil {
			for _, w := range x.workers {
				w.c.close()
			}
			return res, err
		}
		x.workers = append(x.workers, &worker{c: c, in: make(chan *batch, 1), inflight: make(chan *batch, 2)})
	}
	for _, w := range x.workers {
		g.Go(func() error { return x.writeLoop(gctx, w) })
		g.Go(func() error { return x.readLoop(gctx, w) })
	}
	var read int64
	srcErr := x.feed(gctx, ctl, src, &read)
	for _, w := range x.workers {
		close(w.in)
	}
	werr := g.Wait()
	for _, w := range x.workers {
		w.c.close()
	}
	res.Bytes = read
	res.Duration = opts.Now().Sub(start)
	switch {
	case werr != nil:
		return res, fmt.Errorf("%w (%d keys were written before)", werr, res.KeysRestored)
	case srcErr != nil && verificationFailed(srcErr):
		return res, &SourceError{Source: src.Name, Written: res.KeysRestored, Err: srcErr}
	case srcErr != nil:
		if ctx.Err() != nil {
			return res, fmt.Errorf("interrupted: %w (%d keys were written)", ctx.Err(), res.KeysRestored)
		}
		return res, fmt.Errorf("read %s: %w (%d keys were written)", src.Name, srcErr, res.KeysRestored)
	}
	return res, nil
}

// feed is run (redis.go) for a Records source.
func (x *executor) feed(ctx context.Context, ctl *conn, src Records, read *int64) error {
	var bytes, keys int64
	progress := func(force bool) {
		if x.opts.Progress == nil || (!force && keys < 512) {
			return
		}
		x.opts.Progress(bytes, keys)
		bytes, keys = 0, 0
	}
	defer progress(true)
	for {
		rec, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return x.flush(ctx)
		}
		if err != nil {
			if ferr := x.flush(ctx); ferr != nil && ctx.Err() != nil {
				return ferr
			}
			return err
		}
		switch rec.Kind {
		case rdb.RecordFunction:
			if err := x.loadFunction(ctl, rec.FunctionCode); err != nil {
				return err
			}
		case rdb.RecordKey:
			keys++
			n := int64(len(rec.Value)) + 1
			bytes += n
			*read += n
			if err := x.key(ctx, rec); err != nil {
				return err
			}
			progress(false)
		}
	}
}
