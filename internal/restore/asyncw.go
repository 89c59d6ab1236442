package restore

import "io"

// asyncWriter copies what it is given into a few fixed buffers and writes
// them to w on its own goroutine, so parsing and file writes overlap.
// Memory: asyncBufs buffers of asyncBufSize. Close waits for the goroutine.
type asyncWriter struct {
	w     io.Writer
	cur   []byte
	full  chan []byte
	free  chan []byte
	done  chan error
	err   error
	n     int64
	close bool
}

const (
	asyncBufSize = 256 << 10 // 1 MiB in all: a write of 256 KiB is as good as one of 1 MiB, and the Go heap counts each held byte twice
	asyncBufs    = 4
)

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{w: w, full: make(chan []byte, asyncBufs), free: make(chan []byte, asyncBufs), done: make(chan error, 1)}
	for range asyncBufs {
		a.free <- make([]byte, 0, asyncBufSize)
	}
	a.cur = <-a.free
	go func() {
		var err error
		for b := range a.full {
			if err == nil {
				_, err = w.Write(b)
			}
			a.free <- b[:0]
		}
		a.done <- err
	}()
	return a
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), cap(a.cur)-len(a.cur))
		a.cur = append(a.cur, p[:k]...)
		p = p[k:]
		if len(a.cur) == cap(a.cur) {
			a.full <- a.cur
			a.cur = <-a.free
		}
	}
	a.n += int64(n)
	return n, nil
}

// Close writes what is buffered, stops the goroutine and returns the first
// write error. It is safe to call twice.
func (a *asyncWriter) Close() error {
	if a.close {
		return a.err
	}
	a.close = true
	if len(a.cur) > 0 {
		a.full <- a.cur
	}
	close(a.full)
	if err := <-a.done; err != nil && a.err == nil {
		a.err = err
	}
	return a.err
}
