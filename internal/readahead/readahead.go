// Package readahead moves the reading of a stream onto its own goroutine,
// a few buffers ahead of its consumer, so that producing the bytes (reading
// a stored object, checking its sha256, decrypting, decompressing) and
// consuming them (parsing, writing) run on different cores.
package readahead

import (
	"io"
	"sync"
)

// Bounds: at most bufs+2 buffers of bufSize exist (1.5 MiB). A quarter
// MiB per buffer is as fast as 1 MiB (a hand-over per 256 KiB costs
// nothing next to producing them) and the Go heap's goal, twice what is
// live, counts every byte of them twice.
const (
	bufSize = 256 << 10
	bufs    = 4
)

// Reader reads src in its own goroutine, up to bufs buffers of bufSize
// ahead. Close stops the goroutine and waits for it; it must be called.
type Reader struct {
	src  io.Reader
	full chan chunk
	free chan []byte
	stop chan struct{}
	wg   sync.WaitGroup

	cur  chunk
	off  int
	once sync.Once
}

type chunk struct {
	b   []byte
	err error
}

// New starts reading src.
func New(src io.Reader) *Reader {
	r := &Reader{
		src:  src,
		full: make(chan chunk, bufs),
		free: make(chan []byte, bufs+2),
		stop: make(chan struct{}),
	}
	for range bufs + 2 {
		r.free <- make([]byte, bufSize)
	}
	r.wg.Add(1)
	go r.run()
	return r
}

func (r *Reader) run() {
	defer r.wg.Done()
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.stop:
			return
		}
		n, err := io.ReadFull(r.src, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case r.full <- chunk{b: buf[:n], err: err}:
		case <-r.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (r *Reader) Read(p []byte) (int, error) {
	for r.off >= len(r.cur.b) {
		if r.cur.err != nil {
			return 0, r.cur.err
		}
		if r.cur.b != nil {
			r.free <- r.cur.b[:cap(r.cur.b)]
		}
		r.cur, r.off = <-r.full, 0
	}
	n := copy(p, r.cur.b[r.off:])
	r.off += n
	return n, nil
}

// Close stops the reading goroutine and waits for it to end.
func (r *Reader) Close() error {
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
	return nil
}
