package restore

import (
	"bytes"
	"crypto/sha256"
	"runtime"
	"testing"
)

// The async writer holds its asyncBufs fixed buffers (1 MiB in all)
// whatever it is given: 32 MiB written in pieces of 3 MiB arrive whole and
// in order, and allocate the buffers once. Measured as bytes allocated,
// which does not depend on timing.
func TestAsyncWriter_BoundedMemory(t *testing.T) {
	piece := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
	h := sha256.New()
	want := sha256.New()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	a := newAsyncWriter(h)
	for i := range 11 {
		piece[0] = byte(i)
		if _, err := a.Write(piece); err != nil {
			t.Fatal(err)
		}
		want.Write(piece)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&ms)
	alloc := ms.TotalAlloc - before
	if !bytes.Equal(h.Sum(nil), want.Sum(nil)) || a.n != int64(11*len(piece)) {
		t.Fatalf("%d bytes written, not what was given", a.n)
	}
	t.Logf("%d MiB written: %.2f MiB allocated", 11*len(piece)>>20, float64(alloc)/(1<<20))
	if alloc > 3<<19 {
		t.Errorf("%.2f MiB allocated by the async writer, want at most 1.5 MiB", float64(alloc)/(1<<20))
	}
}
