package rdb

import (
	"context"
	"errors"
	"sync"
)

// Fanout hands copies of key records to worker goroutines in batches, so
// work on values (checking, hashing) runs beside the Reader on other cores.
// A Record from Next is valid only until the next call, so Add copies it
// into a batch arena. Memory is bounded by (2×workers+1) batches of about
// fanoutBatchBytes; a value of fanoutInline bytes or more is handed over
// without a copy, and Add waits until a worker is done with it.
//
// Records reach the workers in file order within a batch but batches run
// concurrently, so the work must not depend on order across records.
type Fanout struct {
	ctx    context.Context
	cancel context.CancelFunc
	work   chan *fanoutBatch
	free   chan *fanoutBatch
	cur    *fanoutBatch
	wg     sync.WaitGroup

	mu   sync.Mutex
	errs []error
}

const (
	fanoutBatchBytes = 256 << 10
	fanoutBatchRecs  = 4096
)

// fanoutInline is the size from which Add hands a record over without a
// copy and waits until a worker is done with it: batches then hold at
// most this much each, so all of them together (2×workers+1) stay a few
// MiB whatever the values.
const fanoutInline = 1 << 20

type fanoutBatch struct {
	recs  []Record
	arena []byte
	done  chan struct{} // a record handed over uncopied: closed when done
}

// add copies rec into b; it reports false when b is full (and not empty).
func (b *fanoutBatch) add(rec *Record) bool {
	need := len(rec.Key) + len(rec.Value)
	if len(b.recs) > 0 && (len(b.recs) >= fanoutBatchRecs || len(b.arena)+need > cap(b.arena)) {
		return false
	}
	if len(b.recs) == 0 && need > cap(b.arena) {
		b.arena = make([]byte, 0, need)
	}
	c := Record{Kind: rec.Kind, Offset: rec.Offset, DB: rec.DB, Type: rec.Type, Expire: rec.Expire,
		Idle: rec.Idle, Freq: rec.Freq, Module: rec.Module, valueOff: rec.valueOff}
	start := len(b.arena)
	b.arena = append(b.arena, rec.Key...)
	c.Key = b.arena[start:len(b.arena):len(b.arena)]
	start = len(b.arena)
	b.arena = append(b.arena, rec.Value...)
	c.Value = b.arena[start:len(b.arena):len(b.arena)]
	b.recs = append(b.recs, c)
	return true
}

func (b *fanoutBatch) reset() {
	clear(b.recs) // no hold on a big value handed over uncopied
	b.recs = b.recs[:0]
	if cap(b.arena) > 4*fanoutBatchBytes {
		b.arena = make([]byte, 0, fanoutBatchBytes) // drop an oversized arena
	}
	b.arena = b.arena[:0]
}

// NewFanout starts workers goroutines; each calls fn(worker, recs) for the
// batches it receives (worker is 0..workers-1, so fn can keep per-worker
// state without locks). The first error of any worker stops the others
// and makes Add fail; Wait returns it.
func NewFanout(ctx context.Context, workers int, fn func(worker int, recs []Record) error) *Fanout {
	workers = max(workers, 1)
	ctx, cancel := context.WithCancel(ctx)
	f := &Fanout{ctx: ctx, cancel: cancel, work: make(chan *fanoutBatch, workers), free: make(chan *fanoutBatch, 2*workers+1)}
	for range cap(f.free) {
		f.free <- &fanoutBatch{arena: make([]byte, 0, fanoutBatchBytes)}
	}
	f.cur = <-f.free
	for w := range workers {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for b := range f.work {
				if f.ctx.Err() == nil {
					if err := fn(w, b.recs); err != nil {
						f.fail(err)
					}
				}
				if b.done != nil {
					close(b.done)
					continue
				}
				b.reset()
				f.free <- b
			}
		}()
	}
	return f
}

func (f *Fanout) fail(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
	f.cancel()
}

// Add copies rec (a RecordKey) for the workers; a Streamed one, whose value
// the Reader already walked, is left out. It fails once a worker failed or
// the context ended.
func (f *Fanout) Add(rec *Record) error {
	if f.cur == nil {
		return f.ctx.Err() // a send failed: the workers stopped
	}
	if rec.Streamed {
		return nil // no value: the Reader checked and visited it
	}
	if len(rec.Key)+len(rec.Value) >= fanoutInline {
		// A big value is not copied: a worker takes the record as it is
		// and Add returns once it is done (the record stays valid until
		// then), so memory holds it once.
		b := &fanoutBatch{recs: []Record{*rec}, done: make(chan struct{})}
		select {
		case f.work <- b:
		case <-f.ctx.Done():
			return f.ctx.Err()
		}
		<-b.done
		return f.ctx.Err()
	}
	if f.cur.add(rec) {
		return nil
	}
	if err := f.send(); err != nil {
		return err
	}
	f.cur.add(rec)
	return nil
}

// send hands f.cur to the workers and takes a free batch; f.cur is nil
// while it waits, and stays nil when the context ends: the batch handed
// over belongs to a worker now.
func (f *Fanout) send() error {
	select {
	case f.work <- f.cur:
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
	f.cur = nil
	select {
	case f.cur = <-f.free:
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}

// Wait hands over the last batch, waits for the workers and returns the
// error to report: readErr (the Reader's, which may be nil) or a worker's,
// whichever *FormatError is nearest the start of the file. A worker's wins
// a tie: the Reader only got to that offset by reading past the value.
// Call it exactly once, also after Add failed.
func (f *Fanout) Wait(readErr error) error {
	if f.cur != nil && len(f.cur.recs) > 0 && f.ctx.Err() == nil {
		_ = f.send()
	}
	close(f.work)
	f.wg.Wait()
	defer f.cancel()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) == 0 {
		if readErr == nil {
			return f.ctx.Err()
		}
		return readErr
	}
	return earliest(append(f.errs, readErr)...)
}

// earliest returns, of the non-nil errors, the *FormatError nearest the
// start of the file (the first one given on a tie), or else the first
// non-nil error that is not a cancellation.
func earliest(errs ...error) error {
	var best *FormatError
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if first == nil || errors.Is(first, context.Canceled) {
			first = err
		}
		var fe *FormatError
		if errors.As(err, &fe) && (best == nil || fe.Offset < best.Offset) {
			best = fe
		}
	}
	if best != nil {
		return best
	}
	return first
}

// CheckValues is a Fanout function that checks every value as Next does
// without Options.SkipValueCheck; a damaged one gives a *FormatError
// naming the record's key and offset. It keeps one decoder per worker.
func CheckValues(workers int) func(worker int, recs []Record) error {
	decs := make([]decoder, max(workers, 1))
	return func(w int, recs []Record) error {
		d := &decs[w]
		for i := range recs {
			rec := &recs[i]
			if rec.Kind != RecordKey {
				continue
			}
			err := d.decode(rec.Type, rec.Value, nil)
			if err != nil {
				return toFormatError(err, rec.valueOff, rec.Key, rec.Type)
			}
		}
		return nil
	}
}
