package storage

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Scope returns a view of b in which every key is below prefix: key k of
// the view is prefix+k of b, and List strips prefix again. A view cannot
// name an object outside its prefix (keys are validated first, and "."
// and ".." elements are refused), so two views with prefixes that are not
// prefixes of one another never see each other's objects. prefix is ""
// (b itself is returned) or ends with "/". Close does not close b: the
// caller that opened b closes it.
func Scope(b Backend, prefix string) Backend {
	if prefix == "" {
		return b
	}
	return &scoped{b: b, prefix: prefix}
}

type scoped struct {
	b      Backend
	prefix string
}

func (s *scoped) key(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

func (s *scoped) Put(ctx context.Context, key string, r io.Reader) (ObjectInfo, error) {
	k, err := s.key(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	oi, err := s.b.Put(ctx, k, r)
	oi.Key = key
	return oi, err
}

func (s *scoped) PutIf(ctx context.Context, key string, data []byte, cond Condition) (ObjectInfo, error) {
	k, err := s.key(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	oi, err := s.b.PutIf(ctx, k, data, cond)
	oi.Key = key
	return oi, err
}

func (s *scoped) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	return s.b.Get(ctx, k, off, length)
}

func (s *scoped) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	k, err := s.key(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	oi, err := s.b.Stat(ctx, k)
	oi.Key = key
	return oi, err
}

func (s *scoped) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	return s.b.List(ctx, s.prefix+prefix, func(oi ObjectInfo) error {
		k, err := s.rel("list", prefix, oi.Key)
		if err != nil {
			return err
		}
		oi.Key = k
		return fn(oi)
	})
}

// rel is key of the backend relative to the scope; listing prefix (op)
// must not return keys outside it.
func (s *scoped) rel(op, prefix, key string) (string, error) {
	k, ok := strings.CutPrefix(key, s.prefix)
	if !ok {
		return "", fmt.Errorf("%s %s: backend returned %q outside the prefix", op, s.prefix+prefix, key)
	}
	return k, nil
}

func (s *scoped) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	return s.b.Delete(ctx, k)
}

func (s *scoped) Properties() Properties { return s.b.Properties() }
func (s *scoped) Location() string       { return s.b.Location() }
func (s *scoped) Close() error           { return nil }

// Guard returns a view of b whose operations all run under a context that
// also ends when fence ends (so an upload started with a context that is
// never cancelled is still cut off), and whose writes (Put, PutIf, Delete)
// first call check and fail with its error. A writer that holds a lease
// uses it so that nothing is written once the lease may be held by
// another: fence ends and check fails when the lease is lost or its local
// deadline passed. Close does not close b.
func Guard(b Backend, fence context.Context, check func() error) Backend {
	return &guarded{b: b, fence: fence, check: check}
}

type guarded struct {
	b     Backend
	fence context.Context
	check func() error
}

// bind returns ctx cancelled also when the fence ends, and its release.
func (g *guarded) bind(ctx context.Context) (context.Context, func()) {
	c, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(g.fence, func() { cancel(context.Cause(g.fence)) })
	return c, func() { stop(); cancel(nil) }
}

func (g *guarded) write(ctx context.Context) (context.Context, func(), error) {
	if err := g.check(); err != nil {
		return nil, nil, err
	}
	c, done := g.bind(ctx)
	return c, done, nil
}

func (g *guarded) Put(ctx context.Context, key string, r io.Reader) (ObjectInfo, error) {
	c, done, err := g.write(ctx)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	defer done()
	return g.b.Put(c, key, r)
}

func (g *guarded) PutIf(ctx context.Context, key string, data []byte, cond Condition) (ObjectInfo, error) {
	c, done, err := g.write(ctx)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	defer done()
	return g.b.PutIf(c, key, data, cond)
}

func (g *guarded) Delete(ctx context.Context, key string) error {
	c, done, err := g.write(ctx)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	defer done()
	return g.b.Delete(c, key)
}

func (g *guarded) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	c, done := g.bind(ctx)
	rc, err := g.b.Get(c, key, off, length)
	if err != nil {
		done()
		return nil, err
	}
	return &guardedReader{ReadCloser: rc, done: done}, nil
}

type guardedReader struct {
	io.ReadCloser
	done func()
}

func (r *guardedReader) Close() error {
	err := r.ReadCloser.Close()
	r.done()
	return err
}

func (g *guarded) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	c, done := g.bind(ctx)
	defer done()
	return g.b.Stat(c, key)
}

func (g *guarded) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	c, done := g.bind(ctx)
	defer done()
	return g.b.List(c, prefix, fn)
}

func (g *guarded) Properties() Properties { return g.b.Properties() }
func (g *guarded) Location() string       { return g.b.Location() }
func (g *guarded) Close() error           { return nil }

// Locks reports whether the scoped backend writes under a retention lock.
func (s *scoped) Locks() bool { return Locks(s.b) }

// LockedUntil asks the scoped backend about the key inside the scope.
func (s *scoped) LockedUntil(ctx context.Context, key string) (time.Time, error) {
	k, err := s.key(key)
	if err != nil {
		return time.Time{}, err
	}
	return LockedUntil(ctx, s.b, k)
}

// Unwrap returns the guarded backend (same keys), so that optional
// interfaces such as Locker are found through the guard.
func (g *guarded) Unwrap() Backend { return g.b }

// ListUploads lists the incomplete uploads of the scoped backend inside
// the scope, with keys relative to it.
func (s *scoped) ListUploads(ctx context.Context, prefix string, fn func(Upload) error) error {
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	return ListUploads(ctx, s.b, s.prefix+prefix, func(u Upload) error {
		k, err := s.rel("list uploads", prefix, u.Key)
		if err != nil {
			return err
		}
		u.Key = k
		return fn(u)
	})
}

// AbortUpload aborts an upload ListUploads reported inside the scope.
func (s *scoped) AbortUpload(ctx context.Context, u Upload) error {
	k, err := s.key(u.Key)
	if err != nil {
		return err
	}
	u.Key = k
	return AbortUpload(ctx, s.b, u)
}

// ListUploads lists the guarded backend's incomplete uploads.
func (g *guarded) ListUploads(ctx context.Context, prefix string, fn func(Upload) error) error {
	c, done := g.bind(ctx)
	defer done()
	return ListUploads(c, g.b, prefix, fn)
}

// AbortUpload is a write: it checks the fence first.
func (g *guarded) AbortUpload(ctx context.Context, u Upload) error {
	c, done, err := g.write(ctx)
	if err != nil {
		return fmt.Errorf("abort upload %s: %w", u.Key, err)
	}
	defer done()
	return AbortUpload(c, g.b, u)
}

// ListTemps lists the scoped backend's leftover temporary files inside
// the scope, with keys relative to it.
func (s *scoped) ListTemps(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	return ListTemps(ctx, s.b, s.prefix+prefix, func(o ObjectInfo) error {
		k, err := s.rel("list temporary files", prefix, o.Key)
		if err != nil {
			return err
		}
		o.Key = k
		return fn(o)
	})
}

// RemoveTemp removes a temporary file ListTemps reported inside the scope.
func (s *scoped) RemoveTemp(ctx context.Context, key string) error {
	return RemoveTemp(ctx, s.b, s.prefix+key)
}

// ListTemps lists the guarded backend's leftover temporary files.
func (g *guarded) ListTemps(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	c, done := g.bind(ctx)
	defer done()
	return ListTemps(c, g.b, prefix, fn)
}

// RemoveTemp is a write: it checks the fence first.
func (g *guarded) RemoveTemp(ctx context.Context, key string) error {
	c, done, err := g.write(ctx)
	if err != nil {
		return fmt.Errorf("remove temporary file %s: %w", key, err)
	}
	defer done()
	return RemoveTemp(c, g.b, key)
}
