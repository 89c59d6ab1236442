package digest

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"redback/internal/rdb"
)

// The lane scheduling (lanes.go) is checked against refTerm, the digest
// written out one SHA1 at a time with mixD and xorD, on random keys of
// every kind with element counts odd and even and lengths at the padding
// edges, also with KeyDigest calls and damaged values in between.

// edgeLens are lengths around the one- and two-block limits (55/56,
// 119/120) and block boundaries (63/64).
var edgeLens = []int{0, 1, 19, 20, 54, 55, 56, 57, 63, 64, 65, 118, 119, 120, 121, 127, 128, 200}

func randLen(rng *rand.Rand) int {
	if rng.IntN(2) == 0 {
		return edgeLens[rng.IntN(len(edgeLens))]
	}
	return rng.IntN(130)
}

// distinct returns n random byte strings of random lengths, made distinct
// by a suffix (so sets and hashes accept them) while keeping their length.
func distinct(rng *rand.Rand, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		p := randBytes(rng, randLen(rng))
		if len(p) >= 2 {
			p[len(p)-2], p[len(p)-1] = byte(i), 0xfe
		} else {
			p = []byte{byte(i), 0xfe}
		}
		out[i] = p
	}
	return out
}

type refKey struct {
	rec   *rdb.Record
	steps func(t *sum) // the reference: mixes type, value and TTL into t
}

// term is KeyDigest's term (no name); withName the term Add XORs in.
func (k refKey) term() (t sum) { k.steps(&t); return t }
func (k refKey) withName() (t sum) {
	mixD(&t, k.rec.Key)
	k.steps(&t)
	return t
}

// randKey builds a random key record and its reference steps.
func randKey(rng *rand.Rand, i int) refKey {
	key := randBytes(rng, randLen(rng))
	n := rng.IntN(8)
	var typ rdb.Type
	var raw []byte
	var value func(t *sum)
	switch rng.IntN(6) {
	case 0:
		v := randBytes(rng, randLen(rng))
		typ, raw = rdb.TypeString, rdb.EncodeString(v)
		value = func(t *sum) { mixD(t, be32(0)); mixD(t, v) }
	case 1:
		elems := make([][]byte, n)
		for j := range elems {
			elems[j] = randBytes(rng, randLen(rng))
		}
		typ, raw = rdb.TypeList, rdb.EncodeList(elems)
		value = func(t *sum) {
			mixD(t, be32(1))
			for _, e := range elems {
				mixD(t, e)
			}
		}
	case 2:
		members := distinct(rng, n)
		typ, raw = rdb.TypeSet, rdb.EncodeSet(members)
		value = func(t *sum) {
			mixD(t, be32(2))
			for _, m := range members {
				xorD(t, m)
			}
		}
	case 3:
		members := distinct(rng, n)
		scores := make([]float64, n)
		for j := range scores {
			scores[j] = []float64{rng.NormFloat64() * 1e6, float64(rng.IntN(100)), math.Inf(1), math.Inf(-1)}[rng.IntN(4)]
		}
		typ, raw = rdb.TypeZSet2, rdb.EncodeZSet2(members, scores)
		value = func(t *sum) {
			mixD(t, be32(3))
			for j, m := range members {
				var e sum
				mixD(&e, m)
				mixD(&e, AppendScore(nil, scores[j], Score70))
				xorD(t, e[:])
			}
		}
	case 4:
		fields := distinct(rng, n)
		var fv [][]byte
		for _, f := range fields {
			fv = append(fv, f, randBytes(rng, randLen(rng)))
		}
		typ, raw = rdb.TypeHash, rdb.EncodeHash(fv)
		value = func(t *sum) {
			mixD(t, be32(4))
			for j := 0; j < len(fv); j += 2 {
				var e sum
				mixD(&e, fv[j])
				mixD(&e, fv[j+1])
				xorD(t, e[:])
			}
		}
	default: // hash with field TTLs (type 25)
		fields := distinct(rng, n)
		var entries [][]byte
		for _, f := range fields {
			ttl := int64(0)
			if rng.IntN(2) == 0 {
				ttl = 1700000000000 + rng.Int64N(1e6)
			}
			entries = append(entries, f, randBytes(rng, randLen(rng)), strconv.AppendInt(nil, ttl, 10))
		}
		value = func(t *sum) {
			mixD(t, be32(4))
			for j := 0; j < len(entries); j += 3 {
				var e sum
				mixD(&e, entries[j])
				mixD(&e, entries[j+1])
				if string(entries[j+2]) != "0" {
					xorD(&e, []byte("!!hexpire!!"))
				}
				xorD(t, e[:])
			}
		}
		typ = rdb.TypeHashListpackEx
		raw = append(binary.LittleEndian.AppendUint64(nil, 1700000000000), rdb.EncodeBlob(rdb.BuildListpack(entries))...)
	}
	expire := int64(-1)
	if rng.IntN(4) == 0 {
		expire = 1
	}
	rec := &rdb.Record{Kind: rdb.RecordKey, DB: rng.IntN(3), Offset: int64(i), Key: key, Type: typ, Value: raw, Expire: expire, Idle: -1, Freq: -1}
	return refKey{rec, func(t *sum) {
		value(t)
		if expire >= 0 {
			xorD(t, []byte("!!expire!!"))
		}
	}}
}

func TestLanes_MatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 31))
	d := New(Options{})
	var accs [3]sum
	used := [3]bool{}
	keys := 0
	for i := range 3000 {
		k := randKey(rng, i)
		want := k.term()
		if got, err := d.KeyDigest(k.rec); err != nil || got != hex.EncodeToString(want[:]) {
			t.Fatalf("key %d (type %d): KeyDigest = %s, %v; want %x", i, k.rec.Type, got, err, want)
		}
		// Damaged mid-value: elements before the damage were already fed
		// to the lanes and must be dropped with the key.
		bad := *k.rec
		bad.Value = bad.Value[:len(bad.Value)*2/3]
		if rng.IntN(8) == 0 && rdb.Decode(bad.Type, bad.Value, &rdb.Visitor{}) != nil {
			if d.Add(&bad) == nil {
				t.Fatalf("key %d: damaged value added", i)
			}
		}
		if err := d.Add(k.rec); err != nil {
			t.Fatal(err)
		}
		keys++
		full := k.withName()
		xorD(&accs[k.rec.DB], full[:])
		used[k.rec.DB] = true
	}
	var final sum
	for db, acc := range accs {
		if used[db] {
			mixD(&final, be32(uint32(db)))
			xorInto(&final, &acc)
		}
	}
	if got, want := d.Sum(), hex.EncodeToString(final[:]); got != want || d.Keys() != int64(keys) {
		t.Fatalf("Sum = %s (%d keys), want %s (%d keys)", got, d.Keys(), want, keys)
	}
}
