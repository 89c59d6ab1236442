package digest

import (
	"bytes"
	"runtime"
	"testing"

	"redback/internal/rdb"
)

// digestRDB digests an RDB image, with big strings streamed or not, and
// returns the digest and the bytes allocated while reading.
func digestRDB(t *testing.T, data []byte, stream bool) (string, uint64) {
	t.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	d := New(Options{})
	opts := rdb.Options{SkipValueCheck: true}
	if stream {
		opts.StreamValues, opts.StreamStrings = d.Stream, true
	}
	r, err := rdb.NewReader(bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ForEach(t.Context(), d.Add); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return d.Sum(), after.TotalAlloc - before.TotalAlloc
}

// A 64 MiB string streamed into the digest gives the digest of the string
// held whole, with a few MiB allocated instead of its size.
func TestStream_BigStringNotHeld(t *testing.T) {
	const size = 64 << 20
	var file bytes.Buffer
	w, err := rdb.NewWriter(&file, 10)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.SelectDB(0)
	_ = w.WriteKey([]byte("small"), rdb.TypeString, rdb.EncodeString([]byte("v")), -1, -1, -1)
	_ = w.WriteKey([]byte("big"), rdb.TypeString, rdb.AppendRawString(nil, bytes.Repeat([]byte("0123456789abcdef"), size/16)), 1e13, -1, -1)
	_ = w.WriteKey([]byte("int"), rdb.TypeString, rdb.EncodeString([]byte("12345")), -1, -1, -1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	whole, _ := digestRDB(t, file.Bytes(), false)
	streamed, alloc := digestRDB(t, file.Bytes(), true)
	t.Logf("a %d MiB string streamed: %.1f MiB allocated", size>>20, float64(alloc)/(1<<20))
	if streamed != whole {
		t.Errorf("streamed digest %s, whole %s", streamed, whole)
	}
	if alloc > 8<<20 {
		t.Errorf("%.1f MiB allocated streaming a %d MiB string: want it never held", float64(alloc)/(1<<20), size>>20)
	}
}
