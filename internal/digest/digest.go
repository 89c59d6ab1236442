package digest

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"

	"redback/internal/rdb"
)

// ScoreFormat selects how sorted-set scores are turned into text before
// they are mixed into the digest; it must match the server compared with.
type ScoreFormat int

const (
	// Score70 is "%.17g" as printed by C (Redis ≤ 7.0): 0.1 is
	// "0.10000000000000001", 1e20 is "1e+20", and "inf", "-inf", "nan".
	Score70 ScoreFormat = iota
	// Score72 is fpconv_dtoa (Redis ≥ 7.2): shortest round-trip digits,
	// plain notation for moderate exponents, "1e+21" style otherwise, "0",
	// "-0", "inf", "-inf", "nan". Redback takes the digits from Go's
	// shortest formatting; Grisu2, which Redis uses, is not always
	// shortest, so for rare doubles (well under 1%, none of the
	// "human" values such as 0.1, 1.5 or 1e20) 7.2+ may print one more
	// digit and the digest differs.
	Score72
)

// String returns "7.0" or "7.2".
func (f ScoreFormat) String() string {
	if f == Score72 {
		return "7.2"
	}
	return "7.0"
}

// ParseScoreFormat accepts "7.0" (also "70", "%.17g") and "7.2" (also
// "72", "7.4", "8", "fpconv").
func ParseScoreFormat(s string) (ScoreFormat, error) {
	switch s {
	case "7.0", "70", "%.17g", "":
		return Score70, nil
	case "7.2", "72", "7.4", "8", "8.0", "fpconv":
		return Score72, nil
	}
	return Score70, fmt.Errorf("unknown score format %q: use 7.0 or 7.2", s)
}

// ScoreFormatFor is the score format of the server that wrote an RDB of
// version v: 7.2 from RDB 11 on (Redis 7.2 and later, every Valkey that
// writes 11 or its own 80 and up), 7.0 before.
func ScoreFormatFor(v int) ScoreFormat {
	if v >= 11 {
		return Score72
	}
	return Score70
}

// Options configure a Digest.
type Options struct {
	ScoreFormat ScoreFormat // default Score70
}

type sum [20]byte

// Digest accumulates DEBUG DIGEST over key records. The zero value is not
// usable; call New. A Digest is not safe for concurrent use.
type Digest struct {
	opts Options
	dbs  map[int]*sum // per-db XOR of SHA1(key term)
	keys int64

	lastDB  int // db of the previous Add, whose accumulator is lastAcc
	lastAcc *sum

	// fields caches mixD(zero, f) for short hash field names, which repeat
	// across keys in most datasets; bounded by maxCachedFields entries.
	fields map[string]sum

	// The key term being computed and its pending SHA-1 work (lanes.go).
	t      sum
	x      [2]sum // the chain's queued inputs, oldest first
	nx     int
	xblk   [64]byte
	xacc   sum      // unordered elements' terms, XORed into t at the end
	elems  [2]elem  // the pending elem and the one being added
	pend   *elem    // nil or one of elems
	om     msg      // the ordered element or key name being hashed
	finAcc *sum     // the db accumulator of the previous key's final term, nil if none pending
	finBlk [64]byte // that term padded: finAcc ⊕= SHA1(t)
	finOut sum

	scratch    []byte
	visitor    rdb.Visitor
	valkeyHash bool      // the value being added is Valkey's hash with field TTLs
	streaming  bool      // Stream started a key that Add of its Streamed record ends
	strHash    hash.Hash // SHA1 of a streamed string's pieces so far
	streamStr  bool      // the key being streamed is a string
	valueOnly  bool      // StreamValue started a value that KeyDigest of its Streamed record ends
}

// New returns an empty Digest.
func New(opts Options) *Digest {
	d := &Digest{opts: opts, dbs: make(map[int]*sum)}
	d.visitor = rdb.Visitor{
		String: func(v []byte) error { d.ordered(v); return nil },
		// A streamed string (rdb.Options.StreamStrings) is one ordered
		// element: SHA1 of its bytes, hashed as they arrive, joins the
		// chain when Add ends the key.
		StringPiece: func(p []byte) error { d.strHash.Write(p); return nil },
		ListElem:    func(v []byte) error { d.ordered(v); return nil },
		SetMember: func(m []byte) error {
			x := d.newElem(setElem)
			x.m.set(m)
			d.addElem(x)
			return nil
		},
		ZSetMember: func(m []byte, score float64) error {
			x := d.newElem(zsetElem)
			x.m.set(m)
			d.scratch = AppendScore(d.scratch[:0], score, d.opts.ScoreFormat)
			x.s.set(d.scratch)
			d.addElem(x)
			return nil
		},
		HashField: func(f, v []byte, expireAt int64) error {
			x := d.newElem(hashElem)
			x.e = d.fieldTerm(f)
			x.m.set(v)
			// Redis mixes "!!hexpire!!" into a field with a TTL; Valkey
			// (its own hash type) does not.
			x.hexpire = expireAt != 0 && !d.valkeyHash
			d.addElem(x)
			return nil
		},
		StreamEntry: func(ms, seq uint64, fields [][]byte) error {
			b := strconv.AppendUint(d.scratch[:0], ms, 10)
			b = append(b, '.')
			b = strconv.AppendUint(b, seq, 10)
			d.scratch = b
			d.ordered(b)
			for _, f := range fields {
				d.ordered(f)
			}
			return nil
		},
	}
	return d
}

// Bounds of the hash field name cache.
const (
	maxCachedFields   = 1024
	maxCachedFieldLen = 64
)

// fieldTerm returns mixD(zero, f), from the cache when f is short.
func (d *Digest) fieldTerm(f []byte) sum {
	var e sum
	if len(f) > maxCachedFieldLen {
		mixD(&e, f)
		return e
	}
	if e, ok := d.fields[string(f)]; ok {
		return e
	}
	mixD(&e, f)
	if d.fields == nil {
		d.fields = make(map[string]sum, 64)
	} else if len(d.fields) >= maxCachedFields {
		clear(d.fields) // start over in the same table
	}
	d.fields[string(f)] = e
	return e
}

var (
	expireTag  = []byte("!!expire!!")
	hexpireTag = []byte("!!hexpire!!")

	// kindHash[k] is SHA1 of the big-endian uint32 kind k: mixing a type in
	// is then one SHA1 instead of two.
	kindHash = func() (h [8]sum) {
		for k := range h {
			h[k] = sha1.Sum([]byte{0, 0, 0, byte(k)})
		}
		return h
	}()
	expireHash  = sum(sha1.Sum(expireTag))
	hexpireHash = sum(sha1.Sum(hexpireTag))
)

// Add mixes one record into the digest. Records other than RecordKey are
// ignored. A value that does not decode gives a *rdb.FormatError naming the
// key; the digest is then unchanged. A Streamed record ends the key that
// Stream started on d (its elements are already mixed in).
func (d *Digest) Add(rec *rdb.Record) error {
	if rec.Kind != rdb.RecordKey {
		return nil
	}
	if rec.Streamed {
		if !d.streaming {
			return fmt.Errorf("key %q was streamed, but not into this digest (rdb.Options.StreamValues must be its Stream)", rec.Key)
		}
		d.streaming = false
		d.endStreamed(rec)
	} else {
		d.startKey(rec.Key)
		if err := d.object(rec); err != nil {
			return err
		}
	}
	acc := d.lastAcc
	if acc == nil || d.lastDB != rec.DB {
		acc = d.dbs[rec.DB]
		if acc == nil {
			acc = new(sum)
			d.dbs[rec.DB] = acc
		}
		d.lastDB, d.lastAcc = rec.DB, acc
	}
	d.endKey(acc)
	d.keys++
	return nil
}

// Merge adds the keys that o accumulated into d, as if they had been added
// to d; o must use the same Options. Key terms combine by XOR, so digests of
// disjoint sets of keys computed in parallel merge into the digest of their
// union.
func (d *Digest) Merge(o *Digest) {
	o.flushFinal() // o's last key is not in its accumulator yet
	for id, src := range o.dbs {
		acc := d.dbs[id]
		if acc == nil {
			acc = new(sum)
			d.dbs[id] = acc
		}
		for i := range acc {
			acc[i] ^= src[i]
		}
	}
	d.keys += o.keys
}

// Keys is the number of keys added so far.
func (d *Digest) Keys() int64 { return d.keys }

// Sum returns the digest as 40 lowercase hex characters, as DEBUG DIGEST
// prints it: 40 zeros when no key was added.
func (d *Digest) Sum() string {
	d.flushFinal()
	var final sum
	ids := make([]int, 0, len(d.dbs))
	for id := range d.dbs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		var be [4]byte
		u := uint32(id)
		be[0], be[1], be[2], be[3] = byte(u>>24), byte(u>>16), byte(u>>8), byte(u)
		mixD(&final, be[:])
		acc := d.dbs[id]
		for i := range final {
			final[i] ^= acc[i]
		}
	}
	return hex.EncodeToString(final[:])
}

// Stream is an rdb.Options.StreamValues for a Reader whose key records go
// to d.Add: it starts rec's key and returns the visitor that mixes the
// value's elements in as the Reader decodes them; Add of the Streamed
// record ends the key. (The Reader streams Piecewise values and, with
// rdb.Options.StreamStrings, strings; never a module's.)
func (d *Digest) Stream(rec *rdb.Record) (*rdb.Visitor, error) {
	v, err := d.startStreamed(rec, true)
	d.streaming = err == nil
	return v, err
}

// StreamValue is an rdb.Options.StreamValues for a Reader whose key
// records go to d.KeyDigest: it starts the value digest of rec's key and
// returns the visitor that mixes the value's elements in as the Reader
// decodes them; KeyDigest of the Streamed record ends it. It does not
// change the keys d accumulates.
func (d *Digest) StreamValue(rec *rdb.Record) (*rdb.Visitor, error) {
	v, err := d.startStreamed(rec, false)
	d.valueOnly = err == nil
	return v, err
}

// startStreamed starts the term of rec's key (withName) or of its value
// alone, mixes its type in and returns the visitor of its elements.
func (d *Digest) startStreamed(rec *rdb.Record, withName bool) (*rdb.Visitor, error) {
	kind, ok := rdb.KindOf(rec.Type)
	if !ok || kind == rdb.KindModule {
		return nil, keyError(rec, fmt.Errorf("type %d cannot be streamed", rec.Type))
	}
	if withName {
		d.startKey(rec.Key)
	} else {
		d.t, d.nx = sum{}, 0
	}
	d.push(&kindHash[kind])
	d.valkeyHash = rec.Type == rdb.TypeValkeyHash2
	if d.streamStr = kind == rdb.KindString; d.streamStr {
		if d.strHash == nil {
			d.strHash = sha1.New()
		}
		d.strHash.Reset()
	}
	return &d.visitor, nil
}

// endStreamed mixes in the SHA1 of a streamed string (its one ordered
// element), the last of the value's elements and rec's expire flag.
func (d *Digest) endStreamed(rec *rdb.Record) {
	if d.streamStr {
		var x sum
		d.strHash.Sum(x[:0])
		d.push(&x)
		d.streamStr = false
	}
	d.endObject(rec)
}

// KeyDigest returns DEBUG DIGEST-VALUE of the key in rec: the digest of its
// type, value and TTL presence, without the key name. It does not change
// the keys d accumulates. A Streamed record ends the value StreamValue
// started on d (its elements are already mixed in).
func (d *Digest) KeyDigest(rec *rdb.Record) (string, error) {
	if rec.Kind != rdb.RecordKey {
		return "", fmt.Errorf("record at offset %d is not a key", rec.Offset)
	}
	if rec.Streamed {
		if !d.valueOnly {
			return "", fmt.Errorf("key %q was streamed, but not into this digest's value (rdb.Options.StreamValues must be its StreamValue)", rec.Key)
		}
		d.valueOnly = false
		d.endStreamed(rec)
		return hex.EncodeToString(d.t[:]), nil
	}
	d.t, d.nx = sum{}, 0
	if err := d.object(rec); err != nil {
		return "", err
	}
	return hex.EncodeToString(d.t[:]), nil
}

// object mixes the type, the value and the expire flag of rec into d.t,
// after the chain inputs already queued.
func (d *Digest) object(rec *rdb.Record) error {
	kind, ok := rdb.KindOf(rec.Type)
	if !ok {
		d.dropValue()
		return keyError(rec, fmt.Errorf("unknown object type %d", rec.Type))
	}
	if int(kind) < 0 || int(kind) >= len(kindHash) {
		d.dropValue()
		return keyError(rec, fmt.Errorf("unknown kind %d", kind))
	}
	d.push(&kindHash[kind]) // mixD(t, BE32(kind))
	v := &d.visitor
	if kind == rdb.KindModule {
		// No digest callback offline: only the type is mixed in. Still walk
		// the value so damage is reported.
		v = &rdb.Visitor{}
	}
	d.valkeyHash = rec.Type == rdb.TypeValkeyHash2
	if err := rdb.Decode(rec.Type, rec.Value, v); err != nil {
		d.dropValue()
		return keyError(rec, err)
	}
	d.endObject(rec)
	return nil
}

// endObject mixes in the last of the value's elements and rec's expire flag.
func (d *Digest) endObject(rec *rdb.Record) {
	d.endValue()
	if rec.Expire >= 0 {
		xorInto(&d.t, &expireHash) // xorD(t, "!!expire!!")
	}
}

// keyError makes sure err names the key and its position in the file. A
// FormatError from rdb.Decode has an offset inside the value; it is kept as
// "value byte N" under the record's offset.
func keyError(rec *rdb.Record, err error) error {
	var fe *rdb.FormatError
	if errors.As(err, &fe) {
		if fe.Key != nil {
			return err
		}
		err = fmt.Errorf("value byte %d: %w", fe.Offset, fe.Err)
	}
	return &rdb.FormatError{Offset: rec.Offset, Key: slices.Clone(rec.Key), Type: rec.Type, Err: err}
}

// mixD is d = SHA1(d ⊕ SHA1(p)).
func mixD(d *sum, p []byte) {
	h := sha1Sum(p)
	sha1Xor(d, d, &h)
}
