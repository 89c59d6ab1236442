package digest

import (
	"runtime"
	"strconv"
	"testing"
)

// The cache of hash field terms stays small and is reused in place: a
// hash of many distinct field names (the 5M-field hash of the big bench
// dataset) leaves at most maxCachedFields entries live, and the terms
// equal the uncached ones. (4096 entries held about 400 KiB per digest,
// three digests in a snapshot.)
func TestFieldTerm_CacheBounded(t *testing.T) {
	const n = 16<<10 - 1 // a full cache at the end, for any power-of-two bound up to 16384
	d := New(Options{})
	f := make([]byte, 0, 32)
	base := heapLive()
	for i := range n {
		f = strconv.AppendInt(append(f[:0], "field:"...), int64(i), 10)
		got := d.fieldTerm(f)
		if i%1000 == 0 {
			var want sum
			mixD(&want, f)
			if got != want {
				t.Fatalf("field %q: cached term differs", f)
			}
		}
	}
	live := heapLive() - base
	if len(d.fields) > maxCachedFields {
		t.Fatalf("%d cached fields, want at most %d", len(d.fields), maxCachedFields)
	}
	t.Logf("%d distinct fields: %d KiB live", n, live>>10)
	if live > 200<<10 {
		t.Errorf("%d distinct fields: %d KiB live in the cache, want at most 200 KiB", n, live>>10)
	}
	runtime.KeepAlive(d)
}

// heapLive is the heap in use after a collection.
func heapLive() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
