package restore

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"redback/internal/rdb"
)

// A Spool holds one value at a time: Start of the next waits until the
// previous one was released (or ctx ends); take gives the spool only for
// the key it holds, once.
func TestSpool_OneValueAtATime(t *testing.T) {
	sp := NewSpool(11)
	defer sp.Close()
	ctx := t.Context()
	a := &rdb.Record{Key: []byte("a"), Type: rdb.TypeString}
	b := &rdb.Record{Key: []byte("b"), Type: rdb.TypeString}
	fill := func(rec *rdb.Record, data string) {
		t.Helper()
		v, err := sp.Start(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Raw([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		t.Helper()
		r, err := sp.end()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(got)
	}

	fill(a, "first value")
	if sp.take(b) != nil {
		t.Fatal("take of another key gave the spool")
	}
	if sp.take(a) != sp || sp.take(a) != nil {
		t.Fatal("take of the key held: want the spool once")
	}
	if got := read(); got != "first value" || sp.Size() != int64(len(got)) {
		t.Fatalf("spooled %q (size %d)", got, sp.Size())
	}

	// Taken and not released: the next Start waits.
	started := make(chan error, 1)
	go func() {
		_, err := sp.Start(ctx, b)
		started <- err
	}()
	select {
	case err := <-started:
		t.Fatalf("Start returned (%v) before the value taken was released", err)
	case <-time.After(100 * time.Millisecond):
	}
	sp.Release()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start still waiting after Release")
	}

	// Whoever has a started value's record releases it, taken or not (a
	// key the restore then filtered out, or one that expired).
	sp.Release()
	fill(a, "third")
	if sp.take(a) == nil || read() != "third" {
		t.Fatal("the value after a released one")
	}

	// Taken, not released: a Start whose ctx ends gives up.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := sp.Start(cctx, b); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start with the value held and ctx ended: %v", err)
	}
}
