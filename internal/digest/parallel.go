package digest

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"redback/internal/rdb"
)

// Parallel digest: the reader (one goroutine) copies key records into
// batches; workers hash them into their own Digest, merged at the end (key
// terms combine by XOR, so the order does not matter). Memory is bounded by
// digestBatches × digestBatchBytes, or by the largest single value when one
// is bigger than a batch.
const (
	digestBatchBytes = 1 << 20
	digestBatchRecs  = 4096
)

type recBatch struct {
	recs  []rdb.Record
	arena []byte
}

// add copies rec into b; it reports false when b is full (and not empty).
func (b *recBatch) add(rec *rdb.Record) bool {
	need := len(rec.Key) + len(rec.Value)
	if len(b.recs) > 0 && (len(b.recs) >= digestBatchRecs || len(b.arena)+need > cap(b.arena)) {
		return false
	}
	if len(b.recs) == 0 && need > cap(b.arena) {
		b.arena = make([]byte, 0, need)
	}
	c := rdb.Record{Kind: rec.Kind, Offset: rec.Offset, DB: rec.DB, Type: rec.Type, Expire: rec.Expire, Module: rec.Module}
	start := len(b.arena)
	b.arena = append(b.arena, rec.Key...)
	c.Key = b.arena[start:len(b.arena):len(b.arena)]
	start = len(b.arena)
	b.arena = append(b.arena, rec.Value...)
	c.Value = b.arena[start:len(b.arena):len(b.arena)]
	b.recs = append(b.recs, c)
	return true
}

func (b *recBatch) reset() {
	b.recs = b.recs[:0]
	if cap(b.arena) > 4*digestBatchBytes {
		b.arena = make([]byte, 0, digestBatchBytes) // drop an oversized arena
	}
	b.arena = b.arena[:0]
}

// Workers is how many goroutines Parallel should use here (GOMAXPROCS, at
// most 8); 1 means hashing inline is as good.
func Workers() int {
	n := runtime.GOMAXPROCS(0)
	if n > 8 {
		n = 8
	}
	return n
}

// Parallel feeds every key record that scan produces to workers goroutines
// and merges their digests into d (key terms combine by XOR, so order does
// not matter). scan calls its argument for each key record
// (the record is valid only during the call).
func Parallel(ctx context.Context, d *Digest, opts Options, workers int,
	scan func(ctx context.Context, fn func(*rdb.Record) error) error) error {
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan *recBatch, workers)
	free := make(chan *recBatch, 2*workers+1)
	for i := 0; i < cap(free); i++ {
		free <- &recBatch{arena: make([]byte, 0, digestBatchBytes)}
	}
	var mu sync.Mutex
	var firstErr *rdb.FormatError
	for i := 0; i < workers; i++ {
		g.Go(func() error {
			mine := New(opts)
			for b := range work {
				for j := range b.recs {
					if err := mine.Add(&b.recs[j]); err != nil {
						return err
					}
				}
				b.reset()
				free <- b
			}
			mu.Lock()
			d.Merge(mine)
			mu.Unlock()
			return nil
		})
	}
	cur := <-free
	send := func() error {
		select {
		case work <- cur:
		case <-gctx.Done():
			return gctx.Err()
		}
		select {
		case cur = <-free:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		}
	}
	scanErr := scan(gctx, func(rec *rdb.Record) error {
		if cur.add(rec) {
			return nil
		}
		if err := send(); err != nil {
			return err
		}
		cur.add(rec)
		return nil
	})
	if scanErr == nil && len(cur.recs) > 0 {
		scanErr = send()
	}
	close(work)
	workErr := g.Wait()
	// Report the damage nearest the start of the file when both failed.
	var se, we *rdb.FormatError
	switch {
	case errors.As(scanErr, &se) && errors.As(workErr, &we):
		firstErr = se
		if we.Offset < se.Offset {
			firstErr = we
		}
		return firstErr
	case workErr != nil:
		return workErr
	}
	return scanErr
}
