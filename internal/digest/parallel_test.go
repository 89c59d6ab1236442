package digest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"redback/internal/rdb"
)

func syntheticScan(n int, bad int) func(ctx context.Context, fn func(*rdb.Record) error) error {
	return func(ctx context.Context, fn func(*rdb.Record) error) error {
		rec := &rdb.Record{Kind: rdb.RecordKey, Expire: -1}
		for i := 0; i < n; i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			rec.DB = i % 3
			rec.Offset = int64(i)
			rec.Key = fmt.Appendf(rec.Key[:0], "key:%d", i)
			rec.Type = rdb.TypeString
			rec.Value = rdb.EncodeString(fmt.Appendf(nil, "value %d", i))
			if i == bad {
				rec.Type = rdb.TypeHashListpack
				rec.Value = rdb.EncodeBlob([]byte{1, 2, 3})
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestDigestParallel_MatchesSequential(t *testing.T) {
	const n = 20000 // several batches
	seq := New(Options{})
	if err := syntheticScan(n, -1)(t.Context(), seq.Add); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 2, 4} {
		par := New(Options{})
		if err := Parallel(t.Context(), par, Options{}, workers, syntheticScan(n, -1)); err != nil {
			t.Fatal(err)
		}
		if par.Sum() != seq.Sum() || par.Keys() != n {
			t.Errorf("%d workers: %s (%d keys), sequential %s", workers, par.Sum(), par.Keys(), seq.Sum())
		}
	}
}

func TestDigestParallel_Damage(t *testing.T) {
	for _, bad := range []int{0, 9000, 19999} {
		par := New(Options{})
		err := Parallel(t.Context(), par, Options{}, 2, syntheticScan(20000, bad))
		var fe *rdb.FormatError
		if !errors.As(err, &fe) || fe.Offset != int64(bad) {
			t.Errorf("bad key %d: err %v", bad, err)
		}
	}
}

func TestDigestParallel_Canceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := Parallel(ctx, New(Options{}), Options{}, 2, syntheticScan(20000, -1))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}
