package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"redback/internal/storage"
	"redback/internal/storage/mem"
	"redback/internal/storage/retry"
	"redback/internal/storage/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var fast = retry.Options{MaxAttempts: 5, InitialBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}

func TestBackend_Conformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return retry.New(mem.New(), fast) })
}

var errFlaky = errors.New("flaky")

// flaky fails the next `fails` calls of every operation with err (after
// reading half of Put's reader / delivering half of List's objects).
type flaky struct {
	storage.Backend
	mu    sync.Mutex
	fails int
	err   error
	calls int
}

func (f *flaky) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fails > 0 {
		f.fails--
		return f.err
	}
	return nil
}

func (f *flaky) Put(ctx context.Context, key string, r io.Reader) (storage.ObjectInfo, error) {
	if err := f.fail(); err != nil {
		_, _ = io.CopyN(io.Discard, r, 3) // consume part of the reader
		return storage.ObjectInfo{}, err
	}
	return f.Backend.Put(ctx, key, r)
}

func (f *flaky) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := f.fail(); err != nil {
		return storage.ObjectInfo{}, err
	}
	return f.Backend.Stat(ctx, key)
}

func (f *flaky) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	err := f.fail()
	n := 0
	return f.Backend.List(ctx, prefix, func(fi storage.ObjectInfo) error {
		n++
		if err != nil && n > 2 {
			return err
		}
		return fn(fi)
	})
}

func newFlaky(t *testing.T, fails int, err error) *flaky {
	t.Helper()
	f := &flaky{Backend: mem.New(), fails: fails, err: err}
	if _, err := f.Backend.Put(t.Context(), "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBackend_Stat(t *testing.T) {
	transient := storage.Transient(errFlaky)
	for _, tc := range []struct {
		name      string
		fails     int
		err       error
		wantCalls int
		wantErr   bool
	}{
		{"ok", 0, transient, 1, false},
		{"transient then ok", 3, transient, 4, false},
		{"transient exhausted", 10, transient, 5, true},
		{"permanent", 3, errFlaky, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlaky(t, tc.fails, tc.err)
			_, err := retry.New(f, fast).Stat(t.Context(), "k")
			if (err != nil) != tc.wantErr || f.calls != tc.wantCalls {
				t.Errorf("Stat: err = %v after %d calls; want error %v after %d", err, f.calls, tc.wantErr, tc.wantCalls)
			}
			if err != nil && !errors.Is(err, errFlaky) {
				t.Errorf("error %v does not wrap the backend's error", err)
			}
		})
	}
}

func TestBackend_StopsWhenContextEnds(t *testing.T) {
	f := newFlaky(t, 1000, storage.Transient(errFlaky))
	ctx, cancel := context.WithCancel(t.Context())
	opts := retry.Options{MaxAttempts: -1, InitialBackoff: time.Millisecond, MaxBackoff: time.Hour,
		OnRetry: func(op, key string, attempt int, wait time.Duration, err error) {
			if attempt == 3 {
				cancel()
			}
		}}
	_, err := retry.New(f, opts).Stat(ctx, "k")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errFlaky) {
		t.Errorf("Stat error = %v, want it to wrap context.Canceled and the last error", err)
	}
	if f.calls != 3 {
		t.Errorf("%d calls, want 3", f.calls)
	}
}

func TestBackend_Put(t *testing.T) {
	transient := storage.Transient(errFlaky)
	t.Run("seeker is rewound", func(t *testing.T) {
		f := newFlaky(t, 2, transient)
		r := strings.NewReader("xxhello world")
		_, _ = r.Seek(2, io.SeekStart) // Put starts where the reader is
		fi, err := retry.New(f, fast).Put(t.Context(), "p", r)
		if err != nil || fi.Size != 11 {
			t.Fatalf("Put = %+v, %v", fi, err)
		}
		rc, err := f.Get(t.Context(), "p", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if got, _ := io.ReadAll(rc); string(got) != "hello world" {
			t.Errorf("stored %q, want %q", got, "hello world")
		}
	})
	t.Run("non-seeker is not retried", func(t *testing.T) {
		f := newFlaky(t, 1, transient)
		_, err := retry.New(f, fast).Put(t.Context(), "p", io.MultiReader(strings.NewReader("hello")))
		if !storage.IsTransient(err) || f.calls != 1 {
			t.Errorf("Put = %v after %d calls, want the transient error after 1", err, f.calls)
		}
	})
}

func TestBackend_List(t *testing.T) {
	f := newFlaky(t, 2, storage.Transient(errFlaky))
	for i := range 5 {
		if _, err := f.Backend.Put(t.Context(), fmt.Sprintf("l/%d", i), bytes.NewReader(nil)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err := retry.New(f, fast).List(t.Context(), "l/", func(fi storage.ObjectInfo) error {
		got = append(got, fi.Key)
		return nil
	})
	if err != nil || strings.Join(got, ",") != "l/0,l/1,l/2,l/3,l/4" {
		t.Errorf("List = %q, %v; want every key once, in order", got, err)
	}

	// An error from fn is returned as is and not retried, even if transient.
	f = newFlaky(t, 0, nil)
	fnErr := storage.Transient(errors.New("from fn"))
	n := 0
	err = retry.New(f, fast).List(t.Context(), "", func(storage.ObjectInfo) error { n++; return fnErr })
	if err != fnErr || n != 1 {
		t.Errorf("List = %v after %d calls of fn, want fn's error after 1", err, n)
	}
}
