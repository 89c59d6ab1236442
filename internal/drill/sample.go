package drill

import (
	"context"
	"fmt"
	"os"

	"redback/internal/digest"
	"redback/internal/keysample"
	"redback/internal/rdb"
)

// sampleKey is one key chosen for the value-by-value comparison.
type sampleKey = keysample.Key

// sampled is what the sampling pass learned from the restored file.
type sampled struct {
	keys   []sampleKey
	digest string // full digest in the server's score format, when asked for
}

// eachRecord calls fn with every record of the RDB file at path
// (rdb.Reader.ForEach), a big value streamed into the visitor stream
// returns (rdb.Options.StreamValues; nil: none is); the errors of reading
// the file name it, fn's and ctx's are returned as they are.
func eachRecord(ctx context.Context, path string, stream func(*rdb.Record) (*rdb.Visitor, error), fn func(*rdb.Record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rd, err := rdb.NewReader(f, rdb.Options{StreamValues: stream, StreamStrings: stream != nil})
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var fnErr error
	err = rd.ForEach(ctx, func(rec *rdb.Record) error {
		fnErr = fn(rec)
		return fnErr
	})
	if err != nil && fnErr == nil && ctx.Err() == nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return err
}

// sampleFile parses the RDB at path and picks n keys by hash, computing
// their value digests with score format sf; with full it also computes the
// digest of the whole dataset in that format. Memory: n keys and digests,
// plus the reader's buffer: a big value is streamed into the digests, never
// held whole.
func sampleFile(ctx context.Context, path string, n int, sf digest.ScoreFormat, full bool) (*sampled, error) {
	var all *digest.Digest
	if full {
		all = digest.New(digest.Options{ScoreFormat: sf})
	}
	smp := keysample.New(n, sf)
	stream := func(rec *rdb.Record) (*rdb.Visitor, error) {
		v, err := smp.Stream(rec.DB, rec)
		if err != nil || all == nil {
			return v, err
		}
		w, err := all.Stream(rec)
		return rdb.Tee(w, v), err
	}
	err := eachRecord(ctx, path, stream, func(rec *rdb.Record) error {
		if rec.Kind != rdb.RecordKey {
			return nil
		}
		if all != nil {
			if err := all.Add(rec); err != nil {
				return err
			}
		}
		return smp.Offer(rec.DB, rec)
	})
	if err != nil {
		return nil, err
	}
	s := &sampled{keys: smp.Keys()}
	if all != nil {
		s.digest = all.Sum()
	}
	return s, nil
}
