package drill

import (
	"container/heap"
	"context"
	"encoding/binary"
	"hash/fnv"
	"io"
	"os"

	"redback/internal/digest"
	"redback/internal/rdb"
)

// sampleKey is one key chosen for the value-by-value comparison.
type sampleKey struct {
	db     int
	key    string
	digest string // DEBUG DIGEST-VALUE computed from the backup's record
	expire int64  // absolute unix ms, -1 without TTL
	h      uint64
}

// keyHeap is a max-heap on h: its top is the sampled key with the largest
// hash, the first to be replaced by a key with a smaller one.
type keyHeap []sampleKey

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].h > h[j].h }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(sampleKey)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// keyHash is the FNV-1a hash of the db number and the key: the sample is
// the n keys with the smallest hash, the same keys in every drill of the
// same snapshot whatever the order of the file.
func keyHash(db int, key []byte) uint64 {
	h := fnv.New64a()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(db))
	h.Write(b[:])
	h.Write(key)
	return h.Sum64()
}

// sampled is what the sampling pass learned from the restored file.
type sampled struct {
	keys   []sampleKey
	digest string // full digest in the server's score format, when asked for
}

// sampleFile parses the RDB at path and picks n keys by hash, computing
// their value digests with score format sf; with full it also computes the
// digest of the whole dataset in that format. Memory: n keys and digests,
// plus the reader's buffer.
func sampleFile(ctx context.Context, path string, n int, sf digest.ScoreFormat, full bool) (*sampled, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd, err := rdb.NewReader(f, rdb.Options{})
	if err != nil {
		return nil, err
	}
	dg := digest.New(digest.Options{ScoreFormat: sf})
	var all *digest.Digest
	if full {
		all = digest.New(digest.Options{ScoreFormat: sf})
	}
	h := &keyHeap{}
	for i := 0; ; i++ {
		if i&4095 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if rec.Kind != rdb.RecordKey {
			continue
		}
		if all != nil {
			if err := all.Add(rec); err != nil {
				return nil, err
			}
		}
		if n <= 0 {
			continue
		}
		kh := keyHash(rec.DB, rec.Key)
		if h.Len() >= n && kh >= (*h)[0].h {
			continue
		}
		d, err := dg.KeyDigest(rec)
		if err != nil {
			return nil, err
		}
		k := sampleKey{db: rec.DB, key: string(rec.Key), digest: d, expire: rec.Expire, h: kh}
		if h.Len() < n {
			heap.Push(h, k)
		} else {
			(*h)[0] = k
			heap.Fix(h, 0)
		}
	}
	s := &sampled{keys: *h}
	if all != nil {
		s.digest = all.Sum()
	}
	return s, nil
}
