package rdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"
)

// textVisitor appends every element it sees to *out as a line of text, in
// the order visited.
func textVisitor(out *[]string) *Visitor {
	add := func(s string) error { *out = append(*out, s); return nil }
	return &Visitor{
		String:    func(v []byte) error { return add("s " + string(v)) },
		ListElem:  func(v []byte) error { return add("l " + string(v)) },
		SetMember: func(m []byte) error { return add("m " + string(m)) },
		ZSetMember: func(m []byte, s float64) error {
			return add("z " + string(m) + " " + strconv.FormatFloat(s, 'g', -1, 64))
		},
		HashField: func(f, v []byte, exp int64) error {
			return add("h " + string(f) + " " + string(v) + " " + strconv.FormatInt(exp, 10))
		},
		StreamEntry: func(ms, seq uint64, fields [][]byte) error {
			return add(fmt.Sprintf("e %d-%d %q", ms, seq, fields))
		},
		Stream: func(s *StreamInfo) error { return add(fmt.Sprintf("i %+v", *s)) },
	}
}

// keyTexts reads data and returns, per key, its elements as text. With
// above > 0 the values are streamed from that size on; streamed counts
// the keys that were.
func keyTexts(t *testing.T, data []byte, above int) (texts map[string][]string, streamed int) {
	t.Helper()
	texts = map[string][]string{}
	var cur []string
	opts := Options{}
	if above > 0 {
		opts.StreamAbove = above
		opts.StreamValues = func(rec *Record) (*Visitor, error) {
			if !Piecewise(rec.Type) || rec.Value != nil {
				t.Errorf("key %q of type %d streamed (value %d bytes)", rec.Key, rec.Type, len(rec.Value))
			}
			cur = nil
			return textVisitor(&cur), nil
		}
	}
	eachKey(t, bytes.NewReader(data), opts, func(rec *Record) {
		name := strconv.Itoa(rec.DB) + " " + string(rec.Key)
		if rec.Streamed {
			streamed++
			texts[name] = cur
			return
		}
		var out []string
		if err := Decode(rec.Type, rec.Value, textVisitor(&out)); err != nil {
			t.Fatal(err)
		}
		texts[name] = out
	})
	return texts, streamed
}

// eachKey reads src with opts and calls fn for every key record.
func eachKey(t *testing.T, src io.Reader, opts Options, fn func(rec *Record)) {
	t.Helper()
	r, err := NewReader(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind == RecordKey {
			fn(rec)
		}
	}
}

// Streaming a value gives the visitor exactly the elements, in the same
// order, that decoding it whole does: every fixture (every type and
// encoding of RDB 2 to 13 and Valkey's), every Piecewise value streamed
// from its first piece on.
func TestStreamValues_SameAsWhole(t *testing.T) {
	for _, f := range fixtures() {
		if f.checksum != ChecksumOK {
			continue
		}
		data := f.bytes(t)
		whole, n := keyTexts(t, data, 0)
		if n != 0 {
			t.Fatalf("%s: %d keys streamed without StreamValues", f.name, n)
		}
		got, n := keyTexts(t, data, 1)
		t.Logf("%s: %d keys, %d streamed", f.name, len(whole), n)
		if len(got) != len(whole) {
			t.Fatalf("%s: %d keys streamed, %d whole", f.name, len(got), len(whole))
		}
		for k, w := range whole {
			if fmt.Sprint(got[k]) != fmt.Sprint(w) {
				t.Errorf("%s key %s: streamed %q, whole %q", f.name, k, got[k], w)
			}
		}
	}
}

// bigListFile is an RDB with a quicklist of n elements (nodes of 128)
// between two small keys.
func bigListFile(t *testing.T, n int) []byte {
	t.Helper()
	var file bytes.Buffer
	w, err := NewWriter(&file, 11)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.SelectDB(0)
	_ = w.WriteKey([]byte("before"), TypeString, EncodeString([]byte("b")), -1, -1, -1)
	var nodes [][]byte
	for i := 0; i < n; i += 128 {
		var elems [][]byte
		for j := i; j < min(n, i+128); j++ {
			elems = append(elems, []byte("element-"+strconv.Itoa(j)+"-0123456789abcdef0123456789abcdef"))
		}
		nodes = append(nodes, BuildListpack(elems))
	}
	val := AppendLen(nil, uint64(len(nodes)))
	for _, nd := range nodes {
		val = AppendRawString(AppendLen(val, 2), nd)
	}
	if err := w.WriteKey([]byte("big"), TypeListQuicklist2, val, -1, -1, -1); err != nil {
		t.Fatal(err)
	}
	_ = w.WriteKey([]byte("after"), TypeString, EncodeString([]byte("a")), -1, -1, -1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return file.Bytes()
}

// A streamed value is never held whole: reading a 49 MiB list with
// StreamValues keeps the heap under twice StreamAbove (the read buffer
// grown for the part captured before streaming starts) plus a few read
// buffers, where holding it needs the value's size. Measured as the peak heap in use sampled
// every 64 elements, which does not depend on timing.
func TestStreamValues_BoundedMemory(t *testing.T) {
	data := bigListFile(t, 1<<20)
	t.Logf("list value: %.1f MiB", float64(len(data))/(1<<20))
	src := bytes.NewReader(data)
	var peak uint64
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	elems := 0
	var keys []string
	eachKey(t, src, Options{StreamValues: func(rec *Record) (*Visitor, error) {
		return &Visitor{ListElem: func([]byte) error {
			if elems++; elems%(64<<10) == 0 {
				runtime.GC()
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc-min(ms.HeapAlloc, base))
			}
			return nil
		}}, nil
	}}, func(rec *Record) { keys = append(keys, fmt.Sprintf("%s:%v", rec.Key, rec.Streamed)) })
	if fmt.Sprint(keys) != "[before:false big:true after:false]" || elems != 1<<20 {
		t.Fatalf("keys %v, %d elements", keys, elems)
	}
	t.Logf("peak heap while streaming: %.1f MiB", float64(peak)/(1<<20))
	if limit := uint64(2*DefaultStreamAbove + 4*readBufSize); peak > limit {
		t.Errorf("peak heap %.1f MiB while streaming a %.1f MiB list, want under %.1f MiB",
			float64(peak)/(1<<20), float64(len(data))/(1<<20), float64(limit)/(1<<20))
	}
}

// The duplicate check of a value too big for its table (chunks of hashes,
// sorted and merged, past maxMemChunks from a temporary file) finds a
// repeat wherever it is, and none where there is none.
func TestDupSet_Chunks(t *testing.T) {
	var s dupSet
	for _, n := range []int{maxDupTable + 1, dupChunk + 7, 3*dupChunk + 1, (maxMemChunks+3)*dupChunk + 5} {
		for _, dupAt := range []int{-1, 0, n / 2, n - 1} {
			s.reset(true)
			for i := range n {
				s.add([]byte("member:" + strconv.Itoa(i)))
			}
			if dupAt >= 0 {
				s.add([]byte("member:" + strconv.Itoa(dupAt)))
			}
			if n > (maxMemChunks+1)*dupChunk && (s.runs == 0 || len(s.big) > maxMemChunks) {
				t.Errorf("%d members: %d chunks in the temporary file, %d in memory", n, s.runs, len(s.big))
			}
			_, dup, err := s.candidate()
			if err != nil || dup != (dupAt >= 0) {
				t.Errorf("%d members, repeat of %d: duplicate %v, %v", n, dupAt, dup, err)
			}
		}
	}
}

// The duplicate check of a value of 2M members allocates a few chunks of
// hashes, reused as each goes to the temporary file, not the 16 MiB the
// members' hashes take (nor the 4.5 MiB it kept in memory before).
// Measured as bytes allocated, which does not depend on timing.
func TestDupSet_BoundedMemory(t *testing.T) {
	const n = 2 << 20
	var s dupSet
	s.reset(true)
	member := []byte("member:0000000")
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	for i := range n {
		binary.BigEndian.PutUint32(member[len(member)-4:], uint32(i))
		s.add(member)
	}
	_, dup, err := s.candidate()
	runtime.ReadMemStats(&ms)
	alloc := ms.TotalAlloc - before
	s.reset(false)
	if err != nil || dup {
		t.Fatalf("duplicate %v, %v", dup, err)
	}
	t.Logf("%d members: %.2f MiB allocated", n, float64(alloc)/(1<<20))
	if alloc > 2<<20 {
		t.Errorf("%.2f MiB allocated for the hashes of %d members, want at most 2 MiB", float64(alloc)/(1<<20), n)
	}
}
