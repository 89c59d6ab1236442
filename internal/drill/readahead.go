package drill

import (
	"io"
	"sync"
)

// Read-ahead bounds: at most readAheadBufs+2 buffers of readAheadSize exist.
const (
	readAheadSize = 1 << 20
	readAheadBufs = 4
)

// readAhead reads src in its own goroutine, so that unsealing (sha256,
// decryption, decompression) runs on one core while the consumer (the
// restore's RDB parse and file write) runs on another. Close stops the
// goroutine and waits for it; it must be called.
type readAhead struct {
	src  io.Reader
	full chan chunk
	free chan []byte
	stop chan struct{}
	wg   sync.WaitGroup

	cur  chunk
	off  int
	err  error
	once sync.Once
}

type chunk struct {
	b   []byte
	err error
}

func newReadAhead(src io.Reader) *readAhead {
	r := &readAhead{
		src:  src,
		full: make(chan chunk, readAheadBufs),
		free: make(chan []byte, readAheadBufs+2),
		stop: make(chan struct{}),
	}
	for range readAheadBufs + 2 {
		r.free <- make([]byte, readAheadSize)
	}
	r.wg.Add(1)
	go r.run()
	return r
}

func (r *readAhead) run() {
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

func (r *readAhead) Read(p []byte) (int, error) {
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
func (r *readAhead) Close() error {
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
	return nil
}
