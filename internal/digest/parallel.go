package digest

import (
	"context"
	"runtime"

	"redback/internal/rdb"
)

// Workers is how many goroutines Parallel should use here (GOMAXPROCS, at
// most 8); 1 means hashing inline is as good.
func Workers() int {
	return min(runtime.GOMAXPROCS(0), 8)
}

// Parallel feeds every key record that scan produces to workers goroutines
// (an rdb.Fanout, so memory stays bounded by its batches) and merges their
// digests into d: key terms combine by XOR, so order does not matter. scan
// calls its argument for each key record (the record is valid only during
// the call). Of a damaged value and an error of scan, the one nearest the
// start of the file is returned.
func Parallel(ctx context.Context, d *Digest, opts Options, workers int,
	scan func(ctx context.Context, fn func(*rdb.Record) error) error) error {
	workers = max(workers, 1)
	mine := make([]*Digest, workers)
	for i := range mine {
		mine[i] = New(opts)
	}
	fan := rdb.NewFanout(ctx, workers, func(w int, recs []rdb.Record) error {
		for i := range recs {
			if err := mine[w].Add(&recs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	add := func(rec *rdb.Record) error {
		if rec.Streamed {
			return d.Add(rec)
		}
		return fan.Add(rec)
	}
	if err := fan.Wait(scan(ctx, add)); err != nil {
		return err
	}
	for _, m := range mine {
		d.Merge(m)
	}
	return nil
}
