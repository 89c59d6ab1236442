package readahead

import (
	"bytes"
	"errors"
	"io"
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
