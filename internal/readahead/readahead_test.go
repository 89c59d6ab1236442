package readahead

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

func TestReader(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*bufSize/16+7)
	r := New(iotest.HalfReader(bytes.NewReader(data)))
	got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(r, 100)))
	if err != nil || !bytes.Equal(got, data[:100]) {
		t.Fatalf("first bytes: %v", err)
	}
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(append(got, rest...), data) {
		t.Fatalf("rest: %v, %d bytes", err, len(rest))
	}
	r.Close()

	boom := errors.New("boom")
	r = New(io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(boom)))
	if _, err := io.ReadAll(r); !errors.Is(err, boom) {
		t.Fatalf("error not passed on: %v", err)
	}
	r.Close()

	// Close without reading everything stops the goroutine.
	r = New(bytes.NewReader(data))
	buf := make([]byte, 10)
	r.Read(buf)
	r.Close()
	r.Close()
}

// The buffers ahead are bounded whatever the stream's size: reading 32 MiB
// through a Reader allocates its bufs+2 buffers once (1.5 MiB), not a
// buffer per read. Measured as bytes allocated, which does not depend on
// timing.
func TestReader_BoundedMemory(t *testing.T) {
	const size = 32 << 20
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	r := New(io.LimitReader(zeros{}, size))
	p := make([]byte, 64<<10)
	var n int64
	for {
		k, err := r.Read(p)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	runtime.ReadMemStats(&ms)
	alloc := ms.TotalAlloc - before
	t.Logf("%d MiB read, %.2f MiB allocated", n>>20, float64(alloc)/(1<<20))
	if n != size {
		t.Fatalf("read %d bytes, want %d", n, size)
	}
	if alloc > 2<<20 {
		t.Errorf("%.2f MiB allocated for the buffers ahead (%d of %d KiB), want at most 2 MiB",
			float64(alloc)/(1<<20), bufs+2, bufSize>>10)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
