package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"redback/internal/storage"
)

var _ storage.Backend = (*Backend)(nil)

// Defaults for zero Options fields.
const (
	DefaultMaxAttempts    = 8
	DefaultInitialBackoff = 250 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
)

// Options tunes the retries. Zero fields take the defaults.
type Options struct {
	// MaxAttempts is the number of tries per call, the first included.
	// Negative means no limit: retry until the context ends.
	MaxAttempts int
	// InitialBackoff is the wait after the first failure; it doubles after
	// every further failure up to MaxBackoff. Each wait is jittered down
	// by up to half.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// OnRetry, if not nil, is called before each wait (for logs, metrics).
	OnRetry func(op, key string, attempt int, wait time.Duration, err error)
}

// Backend retries the transient errors of the backend it wraps.
type Backend struct {
	b    storage.Backend
	opts Options
}

// New wraps b.
func New(b storage.Backend, opts Options) *Backend {
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.InitialBackoff <= 0 {
		opts.InitialBackoff = DefaultInitialBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.InitialBackoff)
	return &Backend{b: b, opts: opts}
}

// Unwrap returns the wrapped backend.
func (r *Backend) Unwrap() storage.Backend { return r.b }

// do runs fn until it succeeds, fails permanently, runs out of attempts or
// ctx ends. before, if not nil, prepares a retry (e.g. rewinds a reader);
// its error ends the retries with the previous error.
func (r *Backend) do(ctx context.Context, op, key string, before func() error, fn func() error) error {
	wait := r.opts.InitialBackoff
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !storage.IsTransient(err) {
			return err
		}
		if r.opts.MaxAttempts > 0 && attempt >= r.opts.MaxAttempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		}
		d := wait/2 + rand.N(wait/2+1)
		if r.opts.OnRetry != nil {
			r.opts.OnRetry(op, key, attempt, d, err)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, r.opts.MaxBackoff)
		if before != nil {
			if berr := before(); berr != nil {
				return fmt.Errorf("%w (cannot retry: %v)", err, berr)
			}
		}
	}
}

// Put retries only when r is an io.Seeker.
func (r *Backend) Put(ctx context.Context, key string, rd io.Reader) (storage.ObjectInfo, error) {
	var fi storage.ObjectInfo
	put := func() (err error) {
		fi, err = r.b.Put(ctx, key, rd)
		return err
	}
	s, ok := rd.(io.Seeker)
	if !ok {
		return fi, put()
	}
	start, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return fi, put() // not really seekable (a pipe behind *os.File)
	}
	rewind := func() error {
		_, err := s.Seek(start, io.SeekStart)
		return err
	}
	err = r.do(ctx, "put", key, rewind, put)
	return fi, err
}

// PutIf retries transient failures.
func (r *Backend) PutIf(ctx context.Context, key string, data []byte, cond storage.Condition) (storage.ObjectInfo, error) {
	var fi storage.ObjectInfo
	err := r.do(ctx, "putif", key, nil, func() (err error) {
		fi, err = r.b.PutIf(ctx, key, data, cond)
		return err
	})
	return fi, err
}

// Get retries opening the object, not reading it.
func (r *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "get", key, nil, func() (err error) {
		rc, err = r.b.Get(ctx, key, off, length)
		return err
	})
	return rc, err
}

// Stat retries transient failures.
func (r *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	var fi storage.ObjectInfo
	err := r.do(ctx, "stat", key, nil, func() (err error) {
		fi, err = r.b.Stat(ctx, key)
		return err
	})
	return fi, err
}

// fnError marks an error returned by List's callback, which is never retried.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// List resumes after the last key passed to fn.
func (r *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	var last string
	seen := false
	err := r.do(ctx, "list", prefix, nil, func() error {
		return r.b.List(ctx, prefix, func(fi storage.ObjectInfo) error {
			if seen && fi.Key <= last {
				return nil
			}
			if err := fn(fi); err != nil {
				return &fnError{err}
			}
			last, seen = fi.Key, true
			return nil
		})
	})
	if fe, ok := errors.AsType[*fnError](err); ok {
		return fe.err
	}
	return err
}

// Delete retries transient failures.
func (r *Backend) Delete(ctx context.Context, key string) error {
	return r.do(ctx, "delete", key, nil, func() error { return r.b.Delete(ctx, key) })
}

// Properties returns the wrapped backend's.
func (r *Backend) Properties() storage.Properties { return r.b.Properties() }

// Location returns the wrapped backend's.
func (r *Backend) Location() string { return r.b.Location() }

// Close closes the wrapped backend.
func (r *Backend) Close() error { return r.b.Close() }
