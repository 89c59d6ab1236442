// Package keysample picks a fixed sample of keys from an RDB stream (the n
// keys with the smallest hash of db and name, whatever the order they come
// in) with each value's DEBUG DIGEST-VALUE computed offline, and compares
// such a sample with a live server by DUMP and PEXPIRETIME: the check the
// drill makes value by value, and the one a restore makes when the target
// refuses DEBUG (managed services, enable-debug-command no, a renamed
// DEBUG).
package keysample

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strconv"

	"redback/internal/digest"
	"redback/internal/rdb"
)

// Key is one sampled key as the backup holds it.
type Key struct {
	DB     int // the db the key lives in (on the target: after any --map-db)
	Key    string
	Digest string // DEBUG DIGEST-VALUE computed from the backup's record
	Expire int64  // absolute unix ms, -1 without TTL
	h      uint64
}

// keyHeap is a max-heap on h: its top is the sampled key with the largest
// hash, the first to be replaced by a key with a smaller one.
type keyHeap []Key

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].h > h[j].h }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(Key)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Hash is the FNV-1a hash of the db number and the key: the sample is the
// n keys with the smallest hash, the same keys in every pass over the same
// data whatever the order of the file.
func Hash(db int, key []byte) uint64 {
	h := fnv.New64a()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(db))
	h.Write(b[:])
	h.Write(key)
	return h.Sum64()
}

// Sampler keeps the n keys with the smallest Hash among those offered.
// Memory: n keys and their digests. Not safe for concurrent use.
type Sampler struct {
	n  int
	dg *digest.Digest
	h  keyHeap
	in map[string]bool // the sample's keys, by sampleID
	// streamDB is the db of the key whose value Stream is digesting, -1
	// when none.
	streamDB int
	// keys and ttls count every key offered, and those with a TTL, by db.
	keys, ttls map[int]int64
}

// New makes a Sampler of n keys whose value digests use score format sf.
func New(n int, sf digest.ScoreFormat) *Sampler {
	return &Sampler{n: n, dg: digest.New(digest.Options{ScoreFormat: sf}), in: map[string]bool{}, keys: map[int]int64{}, ttls: map[int]int64{}, streamDB: -1}
}

// Count counts rec in db's key count (Check's counts) without offering
// it for the sample. A nil Sampler does nothing.
func (s *Sampler) Count(db int, rec *rdb.Record) {
	if s == nil || rec.Kind != rdb.RecordKey {
		return
	}
	s.keys[db]++
	if rec.Expire >= 0 {
		s.ttls[db]++
	}
}

// Offer counts and considers the key record rec, which lives in db (the
// target's db when a restore maps dbs). Its value is digested only when
// it enters the sample. A Streamed record ends the value Stream started
// (or, when its key did not enter the sample, is only counted). A nil
// Sampler does nothing.
func (s *Sampler) Offer(db int, rec *rdb.Record) error {
	if s == nil || rec.Kind != rdb.RecordKey {
		return nil
	}
	s.Count(db, rec)
	streamed := rec.Streamed && s.streamDB == db
	s.streamDB = -1
	if rec.Streamed && !streamed || !s.enters(db, rec.Key) {
		return nil
	}
	d, err := s.dg.KeyDigest(rec)
	if err != nil {
		return err
	}
	s.add(Key{DB: db, Key: string(rec.Key), Digest: d, Expire: rec.Expire, h: Hash(db, rec.Key)})
	return nil
}

// Stream is the rdb.Options.StreamValues of a Reader whose key records
// are offered to s (Offer with the same db): the value of a key that
// enters the sample is digested as the Reader decodes it, never held
// whole; other values are only checked (a nil visitor). A nil Sampler
// only checks.
func (s *Sampler) Stream(db int, rec *rdb.Record) (*rdb.Visitor, error) {
	if s == nil || !s.enters(db, rec.Key) {
		return nil, nil
	}
	v, err := s.dg.StreamValue(rec)
	if err != nil {
		return nil, err
	}
	s.streamDB = db
	return v, nil
}

// OfferName considers a key known by name only (from SCAN, say): it
// enters the sample without a digest or an expire time. A name offered
// twice is taken once.
func (s *Sampler) OfferName(db int, key string) {
	if s.enters(db, []byte(key)) {
		s.add(Key{DB: db, Key: key, Expire: -1, h: Hash(db, []byte(key))})
	}
}

func (s *Sampler) enters(db int, key []byte) bool {
	if s.n <= 0 {
		return false
	}
	kh := Hash(db, key)
	if s.h.Len() >= s.n && kh >= s.h[0].h {
		return false
	}
	return !s.in[sampleID(db, key)]
}

func sampleID(db int, key []byte) string { return strconv.Itoa(db) + ":" + string(key) }

func (s *Sampler) add(k Key) {
	s.in[sampleID(k.DB, []byte(k.Key))] = true
	if s.h.Len() < s.n {
		heap.Push(&s.h, k)
		return
	}
	delete(s.in, sampleID(s.h[0].DB, []byte(s.h[0].Key)))
	s.h[0] = k
	heap.Fix(&s.h, 0)
}

// Keys returns the sample (in no particular order).
func (s *Sampler) Keys() []Key {
	if s == nil {
		return nil
	}
	return s.h
}

// ValueDigest is the DEBUG DIGEST-VALUE of a DUMP payload of a key that
// has a TTL (hasTTL) or not, computed as the server would and in the same
// score format as the sample's: a value read by DUMP compares with
// Key.Digest without DEBUG.
func (s *Sampler) ValueDigest(payload []byte, hasTTL bool) (string, error) {
	t, _, raw, _, err := rdb.ParseDumpPayload(payload)
	if err != nil {
		return "", fmt.Errorf("DUMP payload: %w", err)
	}
	rec := &rdb.Record{Kind: rdb.RecordKey, Type: t, Value: raw, Expire: -1, Idle: -1, Freq: -1}
	if hasTTL {
		rec.Expire = 0
	}
	return s.dg.KeyDigest(rec)
}
