package rdb

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// lzfValue is the value bytes of a type-0 string holding the LZF data c
// that decompresses to ulen bytes.
func lzfValue(c []byte, ulen int) []byte {
	v := AppendLen([]byte{0xC3}, uint64(len(c)))
	v = AppendLen(v, uint64(ulen))
	return append(v, c...)
}

// compressible returns n bytes with runs and repeats at every distance up
// to the LZF window and beyond.
func compressible(rng *rand.Rand, n int) []byte {
	s := make([]byte, 0, n+600)
	for len(s) < n {
		switch rng.IntN(4) {
		case 0:
			s = append(s, bytes.Repeat([]byte{byte(rng.Uint32())}, rng.IntN(300))...)
		case 1:
			if len(s) > 0 {
				from := max(0, len(s)-rng.IntN(10000))
				s = append(s, s[from:from+rng.IntN(min(len(s)-from, 500)+1)]...)
			}
		default:
			for range rng.IntN(80) {
				s = append(s, "abcdefgh"[rng.IntN(8)])
			}
		}
	}
	return s[:n]
}

// stringsFile is an RDB (version 10) with the given string values, keys
// k0, k1, ... in order.
func stringsFile(t *testing.T, vals ...[]byte) []byte {
	t.Helper()
	var file bytes.Buffer
	w, err := NewWriter(&file, 10)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.SelectDB(0)
	for i, v := range vals {
		if err := w.WriteKey([]byte("k"+string(rune('0'+i))), TypeString, v, -1, -1, -1); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return file.Bytes()
}

// chunkReader returns its data in reads of random sizes up to max, so that
// values straddle reads everywhere.
type chunkReader struct {
	b   []byte
	rng *rand.Rand
	max int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.b[:min(len(c.b), 1+c.rng.IntN(c.max))])
	c.b = c.b[n:]
	return n, nil
}

// streamedStrings reads data with StreamStrings from above bytes on and
// returns each key's string (pieces joined) and raw bytes, and which keys
// were streamed.
func streamedStrings(data []byte, src io.Reader, above int) (vals, raws map[string][]byte, streamed []string, err error) {
	vals, raws = map[string][]byte{}, map[string][]byte{}
	var cur, raw []byte
	r, err := NewReader(src, Options{StreamAbove: above, StreamStrings: true, StreamValues: func(rec *Record) (*Visitor, error) {
		cur, raw = nil, nil
		return &Visitor{
			StringPiece: func(p []byte) error { cur = append(cur, p...); return nil },
			Raw:         func(p []byte) error { raw = append(raw, p...); return nil },
		}, nil
	}})
	if err != nil {
		return nil, nil, nil, err
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			if r.Checksum() != ChecksumOK {
				return nil, nil, nil, errors.New("checksum " + r.Checksum().String())
			}
			return vals, raws, streamed, nil
		}
		if err != nil {
			return nil, nil, nil, err
		}
		if rec.Kind != RecordKey {
			continue
		}
		k := string(rec.Key)
		if rec.Streamed {
			streamed = append(streamed, k)
			vals[k], raws[k] = cur, raw
			continue
		}
		raws[k] = bytes.Clone(rec.Value)
		if err := Decode(rec.Type, rec.Value, &Visitor{String: func(v []byte) error { vals[k] = bytes.Clone(v); return nil }}); err != nil {
			return nil, nil, nil, err
		}
	}
}

// Big strings, plain and LZF-compressed, reach the visitor piece by piece
// exactly as they are, whatever the read sizes; Raw gives the value's
// bytes as in the file; small and integer strings are held as before.
func TestStreamStrings_RawAndLZF(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1))
	big := make([]byte, 3<<20+5)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	comp := compressible(rng, 5<<20+3)
	c := lzfCompressTest(comp)
	t.Logf("LZF: %d bytes to %d", len(comp), len(c))
	vals := [][]byte{EncodeString([]byte("small")), EncodeString([]byte("12345")), AppendRawString(nil, big), lzfValue(c, len(comp)),
		AppendRawString(nil, big[:1<<20]), lzfValue(lzfCompressTest(comp[:1<<20]), 1<<20)}
	data := stringsFile(t, vals...)
	want := [][]byte{[]byte("small"), []byte("12345"), big, comp, big[:1<<20], comp[:1<<20]}
	for _, src := range []struct {
		name string
		r    io.Reader
	}{{"whole", bytes.NewReader(data)}, {"chunks", &chunkReader{b: data, rng: rng, max: 70000}}, {"tiny chunks", &chunkReader{b: data, rng: rng, max: 40}}} {
		got, raws, streamed, err := streamedStrings(data, src.r, DefaultStreamAbove)
		if err != nil {
			t.Fatalf("%s: %v", src.name, err)
		}
		if strings.Join(streamed, ",") != "k2,k3" {
			t.Errorf("%s: streamed %v, want k2 and k3 (more than 1 MiB)", src.name, streamed)
		}
		for i, w := range want {
			k := "k" + string(rune('0'+i))
			if !bytes.Equal(got[k], w) {
				t.Errorf("%s: key %s: %d bytes, want %d, or they differ", src.name, k, len(got[k]), len(w))
			}
			if !bytes.Equal(raws[k], vals[i]) {
				t.Errorf("%s: key %s: raw bytes differ from the file's", src.name, k)
			}
		}
	}
	// Without StreamStrings nothing changes: strings are held whole.
	eachKey(t, bytes.NewReader(data), Options{StreamValues: CheckStreamed}, func(rec *Record) {
		if rec.Streamed || rec.Value == nil {
			t.Errorf("key %s streamed without StreamStrings", rec.Key)
		}
	})
}

// The streamed LZF decoder agrees with the whole one on every stream,
// whole or damaged: the same output, or an error from both.
func TestStreamStrings_LZFMatchesWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 2))
	for i := range 400 {
		s := compressible(rng, 1+rng.IntN(40000))
		c := lzfCompressTest(s)
		ulen := len(s)
		switch i % 4 {
		case 1:
			c = bytes.Clone(c)
			c[rng.IntN(len(c))] ^= byte(1 + rng.IntN(255))
		case 2:
			ulen += rng.IntN(3) - 1
		case 3:
			c = c[:rng.IntN(len(c))]
		}
		whole, werr := lzfDecompress(nil, c, ulen)
		data := stringsFile(t, lzfValue(c, ulen))
		got, _, streamed, gerr := streamedStrings(data, &chunkReader{b: data, rng: rng, max: 1 + rng.IntN(5000)}, 1)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("case %d: whole %v, streamed %v", i, werr, gerr)
		}
		if gerr != nil {
			var fe *FormatError
			if !errors.As(gerr, &fe) || string(fe.Key) != "k0" {
				t.Fatalf("case %d: %T %v is not a FormatError naming the key", i, gerr, gerr)
			}
			continue
		}
		if len(streamed) != 1 || !bytes.Equal(got["k0"], whole) {
			t.Fatalf("case %d: streamed %v, output differs", i, streamed)
		}
	}
}

// Damage in a streamed string is a FormatError at the offset of the
// damage, naming the key: never a panic, never a silent short value.
func TestStreamStrings_Damage(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 3))
	s := compressible(rng, 2<<20)
	c := lzfCompressTest(s)
	good := stringsFile(t, EncodeString([]byte("x")), lzfValue(c, len(s)))
	// The LZF data starts after the header: 9 bytes of magic, SELECTDB 0
	// (2), key k0 (1+1+2+1+1 = 6), then type, key, 0xC3 and two lengths.
	lzfStart := int64(bytes.Index(good, c[:64]))
	// A back reference to before the output: the first instruction (a
	// literal) becomes a reference 8 KiB back.
	bad := bytes.Clone(good)
	bad[lzfStart] = 0x3f
	bad[lzfStart+1] = 0xff
	// A back reference later on that reaches before the start: find the
	// first reference and make its distance the longest.
	late := bytes.Clone(good)
	ip, refAt := 0, -1
	for ip < len(c) {
		ctl := int(c[ip])
		if ctl < 32 {
			ip += ctl + 2
			continue
		}
		refAt = ip
		break
	}
	late[lzfStart+int64(refAt)] |= 0x1f
	late[lzfStart+int64(refAt)+1+boolInt(c[refAt]>>5 == 7)] = 0xff

	// A declared length longer or shorter than the output.
	longer := stringsFile(t, EncodeString([]byte("x")), lzfValue(c, len(s)+1))
	shorter := stringsFile(t, EncodeString([]byte("x")), lzfValue(c, len(s)-1))
	raw := stringsFile(t, EncodeString([]byte("x")), AppendRawString(nil, s))
	for _, tc := range []struct {
		name string
		data []byte
		off  int64 // -1: any
		want string
	}{
		{"bad first back reference", bad, lzfStart, "before the start of the output"},
		{"back reference too far", late, lzfStart + int64(refAt), "before the start of the output"},
		{"declared longer", longer, int64(len(longer)) - 9, "declared"},
		{"declared shorter", shorter, -1, "longer than the declared"},
		{"LZF truncated", good[:len(good)-5000], int64(len(good)) - 5000, "truncated"},
		{"LZF cut in an instruction", good[:lzfStart+1], -1, "truncated"},
		{"raw truncated", raw[:len(raw)-5000], int64(len(raw)) - 5000, "truncated"},
	} {
		_, _, _, err := streamedStrings(tc.data, &chunkReader{b: tc.data, rng: rng, max: 100000}, DefaultStreamAbove)
		var fe *FormatError
		if !errors.As(err, &fe) || string(fe.Key) != "k1" || !strings.Contains(err.Error(), tc.want) || tc.off >= 0 && fe.Offset != tc.off {
			t.Errorf("%s: %v, want a FormatError for k1 at offset %d saying %q", tc.name, err, tc.off, tc.want)
			continue
		}
		if strings.Contains(tc.name, "truncated") && !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: %v does not wrap ErrTruncated", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// A streamed 64 MiB string is never held: plain or LZF-compressed, the
// bytes allocated while reading stay a few read buffers, where holding it
// takes its size (TestBigValueAllocatedOnce).
func TestStreamStrings_BoundedMemory(t *testing.T) {
	const size = 64 << 20
	big := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	c := lzfCompressTest(big[:8<<20])
	for _, tc := range []struct {
		name string
		val  []byte
		n    int
	}{{"plain", AppendRawString(nil, big), size}, {"LZF", lzfValue(c, 8<<20), 8 << 20}} {
		data := stringsFile(t, EncodeString([]byte("before")), tc.val, EncodeString([]byte("after")))
		tc.val = nil
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var n int
		var last byte
		eachKey(t, bytes.NewReader(data), Options{StreamStrings: true, StreamValues: func(*Record) (*Visitor, error) {
			return &Visitor{StringPiece: func(p []byte) error { n += len(p); last = p[len(p)-1]; return nil }}, nil
		}}, func(*Record) {})
		runtime.ReadMemStats(&after)
		if n != tc.n || last != 'f' {
			t.Fatalf("%s: %d bytes streamed, want %d", tc.name, n, tc.n)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: a %d MiB string: %.1f MiB allocated while reading", tc.name, tc.n>>20, float64(alloc)/(1<<20))
		if alloc > 4*readBufSize {
			t.Errorf("%s: %.1f MiB allocated for a %d MiB string: want it streamed, not held", tc.name, float64(alloc)/(1<<20), tc.n>>20)
		}
	}
}
