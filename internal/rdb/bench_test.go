package rdb

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// benchRDB builds an RDB of about size bytes with a realistic mix: small
// and int strings, 1 KB strings, listpack hashes, zsets and sets,
// intsets, quicklists and hash-table hashes.
func benchRDB(tb testing.TB, size int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	buf.Grow(size + 1<<20)
	w, err := NewWriter(&buf, 10)
	if err != nil {
		tb.Fatal(err)
	}
	w.WriteAux([]byte("redis-ver"), []byte("7.0.15"))
	w.SelectDB(0)
	val1k := bytes.Repeat([]byte("0123456789abcdef"), 64)
	var key []byte
	var elems [][]byte
	for i := 0; buf.Len() < size; i++ {
		key = strconv.AppendInt(append(key[:0], "key:"...), int64(i), 10)
		var typ Type
		var raw []byte
		switch i % 8 {
		case 0, 1:
			typ, raw = TypeString, EncodeString(strconv.AppendInt(nil, int64(i)*7, 10))
		case 2:
			typ, raw = TypeString, EncodeString(val1k)
		case 3:
			elems = elems[:0]
			for j := range 20 {
				elems = append(elems, []byte("field"+strconv.Itoa(j)), []byte("value-"+strconv.Itoa(i*j)))
			}
			typ, raw = TypeHashListpack, EncodeBlob(BuildListpack(elems))
		case 4:
			elems = elems[:0]
			for j := range 30 {
				elems = append(elems, []byte("member"+strconv.Itoa(j)), []byte(strconv.Itoa(j*3)))
			}
			typ, raw = TypeZSetListpack, EncodeBlob(BuildListpack(elems))
		case 5:
			vals := make([]int64, 50)
			for j := range vals {
				vals[j] = int64(j * 1000)
			}
			typ, raw = TypeSetIntset, EncodeBlob(BuildIntset(vals))
		case 6:
			elems = elems[:0]
			for j := range 40 {
				elems = append(elems, []byte("item-"+strconv.Itoa(j)))
			}
			raw = AppendLen(nil, 2)
			for range 2 {
				raw = AppendLen(raw, 2)
				raw = AppendRawString(raw, BuildListpack(elems))
			}
			typ = TypeListQuicklist2
		case 7:
			elems = elems[:0]
			for j := range 30 {
				elems = append(elems, []byte("f"+strconv.Itoa(j)), []byte("some value "+strconv.Itoa(j)))
			}
			typ, raw = TypeHash, EncodeHash(elems)
		}
		w.WriteKey(key, typ, raw, -1, -1, -1)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkReader(b *testing.B) {
	data := benchRDB(b, 50<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data), Options{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestReader_File is a manual measurement helper: REDBACK_RDB_WRITE=path
// writes the benchmark RDB there; REDBACK_RDB_READ=path reads a file and
// logs throughput and peak RSS (compare with redis-check-rdb on the same
// file). Without either variable it does nothing.
func TestReader_File(t *testing.T) {
	if p := os.Getenv("REDBACK_RDB_WRITE"); p != "" {
		if err := os.WriteFile(p, benchRDB(t, 50<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := os.Getenv("REDBACK_RDB_READ")
	if p == "" {
		return
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	r, err := NewReader(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind == RecordKey {
			keys++
		}
	}
	d := time.Since(start)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t.Logf("%d keys, %d bytes in %v: %.0f MB/s, checksum %v, peak RSS %d KiB", keys, r.Offset(), d, float64(r.Offset())/d.Seconds()/1e6, r.Checksum(), ru.Maxrss)
}

// BenchmarkWalkPacked walks a 10-field hash listpack, as the check does.
func BenchmarkWalkPacked(b *testing.B) {
	var elems [][]byte
	for j := range 10 {
		elems = append(elems, []byte("f"+strconv.Itoa(j)), []byte("0123456789abcdef01234567"))
	}
	lp := BuildListpack(elems)
	var d decoder
	v := &Visitor{}
	for b.Loop() {
		d.dups.reset(true)
		if _, err := d.walkPacked(lp, true, packHash, v); err != nil {
			b.Fatal(err)
		}
	}
}
