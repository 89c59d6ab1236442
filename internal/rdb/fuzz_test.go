package rdb

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fuzzMaxInput = 1 << 20

// fullVisitor touches every callback so that Decode builds everything.
func fullVisitor() *Visitor {
	return &Visitor{
		String:      func([]byte) error { return nil },
		ListElem:    func([]byte) error { return nil },
		SetMember:   func([]byte) error { return nil },
		ZSetMember:  func([]byte, float64) error { return nil },
		HashField:   func(_, _ []byte, _ int64) error { return nil },
		StreamEntry: func(_, _ uint64, _ [][]byte) error { return nil },
		Stream:      func(*StreamInfo) error { return nil },
		StringPiece: func([]byte) error { return nil },
		Raw:         func([]byte) error { return nil },
	}
}

func addFixtureSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.rdb"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

func FuzzRDBReader(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		// Reading with SkipValueCheck and decoding every value finds
		// damage exactly when the full check does.
		if full, skip := readErrMode(data, false), readErrMode(data, true); (full == nil) != (skip == nil) {
			t.Fatalf("full check %v, with SkipValueCheck and Decode %v", full, skip)
		}
		// Streaming every Piecewise value finds damage exactly when the
		// full check does.
		if full, st := readErrMode(data, false), readErrStream(data); (full == nil) != (st == nil) {
			t.Fatalf("full check %v, streaming the values %v", full, st)
		}
		r, err := NewReader(bytes.NewReader(data), Options{MaxValueBytes: 4 << 20})
		if err != nil {
			return
		}
		for range 100000 {
			rec, err := r.Next()
			if err != nil {
				if err != io.EOF {
					if _, ok := err.(*FormatError); !ok {
						t.Fatalf("error %T %v is not a *FormatError", err, err)
					}
				}
				return
			}
			if rec.Kind == RecordKey {
				if err := Decode(rec.Type, rec.Value, fullVisitor()); err != nil {
					t.Fatalf("Reader accepted key %q but Decode refused it: %v", rec.Key, err)
				}
				_ = DumpPayload(rec.Type, rec.Value, 10)
			}
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, fx := range fixtures() {
		data := fx.bytes(&testing.T{})
		r, err := NewReader(bytes.NewReader(data), Options{})
		if err != nil {
			continue
		}
		for {
			rec, err := r.Next()
			if err != nil {
				break
			}
			if rec.Kind == RecordKey {
				f.Add(append([]byte{byte(rec.Type)}, rec.Value...))
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || len(in) > fuzzMaxInput {
			return
		}
		_ = Decode(Type(in[0]), in[1:], fullVisitor())
		_ = Decode(Type(in[0]), in[1:], nil)
	})
}

// entriesText returns a packed container's entries as text.
func entriesText(next func() (lpEntry, bool, error)) ([][]byte, error) {
	var out [][]byte
	var num [24]byte
	for {
		e, ok, err := next()
		if err != nil || !ok {
			return out, err
		}
		out = append(out, bytes.Clone(e.text(num[:0])))
	}
}

func FuzzListpack(f *testing.F) {
	f.Add(BuildListpack(bs("a", "1", "-1", "4095", "-4096", "70000", "-9000000", "9000000000", strings.Repeat("x", 70), strings.Repeat("y", 5000))))
	f.Add(BuildListpack(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMaxInput {
			return
		}
		it, err := newLPIter(b)
		if err != nil {
			return
		}
		ents, err := entriesText(it.next)
		if err != nil {
			return
		}
		// Whatever parses must survive a rebuild with the same entries.
		it2, err := newLPIter(BuildListpack(ents))
		if err != nil {
			t.Fatal(err)
		}
		got, err := entriesText(it2.next)
		if err != nil || len(got) != len(ents) {
			t.Fatalf("rebuilt listpack: %v, %d entries, want %d", err, len(got), len(ents))
		}
		for i := range got {
			if !bytes.Equal(got[i], ents[i]) {
				t.Fatalf("entry %d: %q, want %q", i, got[i], ents[i])
			}
		}
	})
}

func FuzzZiplist(f *testing.F) {
	f.Add(BuildZiplist(bs("a", "1", "-1", "12", "200", "-40000", "9000000", "9000000000", strings.Repeat("x", 300))))
	f.Add(BuildZiplist(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMaxInput {
			return
		}
		it, err := newZLIter(b)
		if err != nil {
			return
		}
		ents, err := entriesText(it.next)
		if err != nil {
			return
		}
		it2, err := newZLIter(BuildZiplist(ents))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := entriesText(it2.next); err != nil || len(got) != len(ents) {
			t.Fatalf("rebuilt ziplist: %v, %d entries, want %d", err, len(got), len(ents))
		}
	})
}

func FuzzIntset(f *testing.F) {
	f.Add(BuildIntset([]int64{1, 2, 3}))
	f.Add(BuildIntset([]int64{-1 << 40, 0, 1 << 40}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMaxInput {
			return
		}
		s, err := parseIntset(b)
		if err != nil {
			return
		}
		vals := make([]int64, s.n)
		for i := range vals {
			vals[i] = s.at(i)
		}
		if _, err := parseIntset(BuildIntset(vals)); err != nil {
			t.Fatalf("rebuilt intset: %v", err)
		}
	})
}

func FuzzZipmap(f *testing.F) {
	f.Add(BuildZipmap(bs("a", "b", "long", strings.Repeat("v", 300))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMaxInput {
			return
		}
		var d decoder
		_ = d.walkZipmap(b, func(_, _ []byte, _ int64) error { return nil })
	})
}

func FuzzLZF(f *testing.F) {
	f.Add([]byte{0x01, 'x', 'x', 0xe0, 0x57, 0x00, 0x01, 'x', 'x'}, uint32(100))
	f.Add(AppendLZFString(nil, []byte("hello hello hello hello"))[3:], uint32(23))
	f.Fuzz(func(t *testing.T, in []byte, ulen uint32) {
		if len(in) > fuzzMaxInput {
			return
		}
		out, err := lzfDecompress(nil, in, int(ulen))
		if err == nil && len(out) != int(ulen) {
			t.Fatalf("output %d bytes, declared %d", len(out), ulen)
		}
	})
}

// FuzzDumpPayload: DUMP payloads come from servers and files; the footer,
// the key metadata of Redis 8.6 and the type byte are parsed without
// trusting any length.
func FuzzDumpPayload(f *testing.F) {
	f.Add(DumpPayload(TypeString, EncodeString([]byte("v")), 10))
	f.Add(AppendMetaPayload(nil, keyMetaBody(false), TypeString, EncodeString([]byte("v")), 13))
	f.Add(AppendMetaPayload(nil, keyMetaBody(false), TypeSetListpack, EncodeBlob(BuildListpack(bs("m"))), 80))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > fuzzMaxInput {
			return
		}
		typ, _, raw, _, err := ParseDumpPayload(in)
		if err == nil {
			_ = Decode(typ, raw, fullVisitor())
		}
		if len(in) >= 11 {
			_, _, _, _ = SplitPayload(in)
		}
	})
}
