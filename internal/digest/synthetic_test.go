package digest

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"redback/internal/rdb"
)

// ref is an independent, literal transcription of redis-formats.md §8.3
// used to check Digest on values a 7.0 server cannot write.
func refMix(d [20]byte, p []byte) [20]byte { var s sum = d; mixD(&s, p); return s }
func refXor(d [20]byte, p []byte) [20]byte { var s sum = d; xorD(&s, p); return s }
func be32(n uint32) []byte                 { return binary.BigEndian.AppendUint32(nil, n) }

// xorD is d ⊕= SHA1(p).
func xorD(d *sum, p []byte) {
	h := sum(sha1.Sum(p))
	xorInto(d, &h)
}

func keyRec(db int, key string, t rdb.Type, raw []byte, expire int64) *rdb.Record {
	return &rdb.Record{Kind: rdb.RecordKey, DB: db, Key: []byte(key), Type: t, Value: raw, Expire: expire, Idle: -1, Freq: -1}
}

func moduleID(name string, ver uint64) uint64 {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var id uint64
	for _, c := range name {
		id = id<<6 | uint64(strings.IndexRune(alphabet, c))
	}
	return id<<10 | ver
}

func TestDigest_KeyDigestSynthetic(t *testing.T) {
	zero := [20]byte{}
	strTerm := refMix(refMix(zero, be32(0)), []byte("hello"))
	hexp := refMix(refMix(zero, []byte("f1")), []byte("v1"))
	hexp = refXor(hexp, []byte("!!hexpire!!"))
	hplain := refMix(refMix(zero, []byte("f2")), []byte("v2"))
	hashTerm := refXor(refXor(refMix(zero, be32(4)), hexp[:]), hplain[:])
	lp := rdb.BuildListpack([][]byte{[]byte("f1"), []byte("v1"), []byte("1700000000000"), []byte("f2"), []byte("v2"), []byte("0")})
	hashRaw := append(binary.LittleEndian.AppendUint64(nil, 1700000000000), rdb.EncodeBlob(lp)...)
	modRaw := rdb.AppendLen(rdb.AppendModuleTag(rdb.AppendLen(nil, moduleID("testmodul", 1)), 2, 7, nil), 0)
	tests := []struct {
		name string
		rec  *rdb.Record
		want [20]byte
	}{
		{"string", keyRec(0, "k", rdb.TypeString, rdb.EncodeString([]byte("hello")), -1), strTerm},
		{"string with TTL", keyRec(0, "k", rdb.TypeString, rdb.EncodeString([]byte("hello")), 1), refXor(strTerm, []byte("!!expire!!"))},
		{"int string is canonical decimal", keyRec(0, "k", rdb.TypeString, rdb.EncodeString([]byte("-42")), -1),
			refMix(refMix(zero, be32(0)), []byte("-42"))},
		{"hash field TTLs (7.4 type 25)", keyRec(0, "h", rdb.TypeHashListpackEx, hashRaw, -1), hashTerm},
		{"module adds only its type", keyRec(0, "m", rdb.TypeModule2, modRaw, -1), refMix(zero, be32(5))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(Options{}).KeyDigest(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if want := hex.EncodeToString(tt.want[:]); got != want {
				t.Errorf("KeyDigest = %s, want %s", got, want)
			}
		})
	}
}

func TestDigest_AddSynthetic(t *testing.T) {
	recs := []*rdb.Record{
		keyRec(2, "b", rdb.TypeString, rdb.EncodeString([]byte("2")), -1),
		keyRec(0, "a", rdb.TypeString, rdb.EncodeString([]byte("1")), -1),
		keyRec(2, "c", rdb.TypeList, rdb.EncodeList([][]byte{[]byte("x"), []byte("y")}), 5),
	}
	// Reference: db 0 first, then db 2, regardless of the input order.
	var final [20]byte
	keyTerm := func(r *rdb.Record) []byte {
		d := New(Options{})
		mixD(&d.t, r.Key)
		if err := d.object(r); err != nil {
			t.Fatal(err)
		}
		return d.t[:]
	}
	final = refMix(final, be32(0))
	final = refXor(final, keyTerm(recs[1]))
	final = refMix(final, be32(2))
	final = refXor(final, keyTerm(recs[0]))
	final = refXor(final, keyTerm(recs[2]))
	d := New(Options{})
	for _, r := range recs {
		if err := d.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := d.Sum(), hex.EncodeToString(final[:]); got != want || d.Keys() != 3 {
		t.Fatalf("Sum = %s (%d keys), want %s", got, d.Keys(), want)
	}
}

func TestDigest_DamagedValue(t *testing.T) {
	rec := keyRec(0, "bad", rdb.TypeHashListpack, rdb.EncodeBlob([]byte{1, 2, 3}), -1)
	rec.Offset = 1234
	d := New(Options{})
	err := d.Add(rec)
	fe, ok := err.(*rdb.FormatError)
	if !ok || string(fe.Key) != "bad" {
		t.Fatalf("Add = %v (%T), want a FormatError naming the key", err, err)
	}
	if d.Keys() != 0 || d.Sum() != strings.Repeat("0", 40) {
		t.Fatal("damaged key changed the digest")
	}
}

func TestDigest_DamagedValueMessage(t *testing.T) {
	rec := keyRec(0, "bad", rdb.TypeHashListpack, rdb.EncodeBlob([]byte{1, 2, 3}), -1)
	rec.Offset = 1234
	err := New(Options{}).Add(rec)
	if msg := err.Error(); !strings.HasPrefix(msg, `offset 1234: key "bad" (type 16): value byte `) {
		t.Fatalf("error %q", msg)
	}
}
