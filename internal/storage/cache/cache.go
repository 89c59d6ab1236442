// Package cache is a read-through cache of small immutable-by-key objects
// (manifests) in front of a storage.Backend, for long-running readers such
// as the timeline server: a repository of 10,000 snapshots is listed with
// one List and no Get once its manifests are cached.
//
// A cached object is served only while the newest List that covered its key
// reported the same size, modification time and ETag as when it was read, so
// an object rewritten in place (a generation manifest that ended, a snapshot
// marked keep) or deleted is read again. Objects never listed are not cached.
// Memory is bounded by MaxBytes; beyond it, objects are read through.
package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"redback/internal/storage"
)

// DefaultMaxBytes bounds the cached bytes when Options.MaxBytes is 0.
const DefaultMaxBytes = 256 << 20

// maxObject is the largest object kept (a manifest is far smaller).
const maxObject = 4 << 20

// Options configure a Backend.
type Options struct {
	// MaxBytes bounds the bytes held (DefaultMaxBytes when 0).
	MaxBytes int64
	// Cacheable reports whether key may be cached; nil: keys ending in ".json".
	Cacheable func(key string) bool
}

// Backend is a storage.Backend whose whole-object Gets of cacheable keys are
// served from memory while a List still shows them unchanged. Safe for
// concurrent use.
type Backend struct {
	storage.Backend
	opts Options

	mu      sync.Mutex
	listed  map[string]storage.ObjectInfo // key -> what the newest List reported
	entries map[string]entry
	bytes   int64
	hits    int64
	misses  int64
}

type entry struct {
	info storage.ObjectInfo // as listed when read
	data []byte
}

var _ storage.Backend = (*Backend)(nil)

// New wraps b.
func New(b storage.Backend, o Options) *Backend {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Cacheable == nil {
		o.Cacheable = func(k string) bool { return strings.HasSuffix(k, ".json") }
	}
	return &Backend{Backend: b, opts: o, listed: map[string]storage.ObjectInfo{}, entries: map[string]entry{}}
}

func same(a, b storage.ObjectInfo) bool {
	return a.Size == b.Size && a.ModTime.Equal(b.ModTime) && a.ETag == b.ETag
}

// List lists b and refreshes what the cache knows about every key under
// prefix: changed and vanished objects are dropped.
func (c *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	seen := map[string]storage.ObjectInfo{}
	err := c.Backend.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if c.opts.Cacheable(oi.Key) {
			seen[oi.Key] = oi
		}
		return fn(oi)
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.listed {
		if strings.HasPrefix(k, prefix) {
			if _, ok := seen[k]; !ok {
				delete(c.listed, k)
				c.dropLocked(k)
			}
		}
	}
	for k, oi := range seen {
		c.listed[k] = oi
		if e, ok := c.entries[k]; ok && !same(e.info, oi) {
			c.dropLocked(k)
		}
	}
	return nil
}

func (c *Backend) dropLocked(k string) {
	if e, ok := c.entries[k]; ok {
		c.bytes -= int64(len(e.data))
		delete(c.entries, k)
	}
}

// Get serves whole-object reads of listed cacheable keys from memory.
func (c *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if off != 0 || length >= 0 || !c.opts.Cacheable(key) {
		return c.Backend.Get(ctx, key, off, length)
	}
	c.mu.Lock()
	info, listed := c.listed[key]
	e, ok := c.entries[key]
	if ok && listed && same(e.info, info) {
		c.hits++
		c.mu.Unlock()
		return io.NopCloser(bytes.NewReader(e.data)), nil
	}
	c.misses++
	c.mu.Unlock()
	rc, err := c.Backend.Get(ctx, key, off, length)
	if err != nil || !listed || info.Size > maxObject {
		return rc, err
	}
	data, err := io.ReadAll(io.LimitReader(rc, maxObject+1))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(data)) == info.Size {
		c.mu.Lock()
		if cur, ok := c.listed[key]; ok && same(cur, info) && c.bytes+int64(len(data)) <= c.opts.MaxBytes {
			c.dropLocked(key)
			c.entries[key] = entry{info: info, data: data}
			c.bytes += int64(len(data))
		}
		c.mu.Unlock()
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Put writes through and forgets key.
func (c *Backend) Put(ctx context.Context, key string, r io.Reader) (storage.ObjectInfo, error) {
	c.forget(key)
	return c.Backend.Put(ctx, key, r)
}

// PutIf writes through and forgets key.
func (c *Backend) PutIf(ctx context.Context, key string, data []byte, cond storage.Condition) (storage.ObjectInfo, error) {
	c.forget(key)
	return c.Backend.PutIf(ctx, key, data, cond)
}

// Delete deletes through and forgets key.
func (c *Backend) Delete(ctx context.Context, key string) error {
	c.forget(key)
	return c.Backend.Delete(ctx, key)
}

func (c *Backend) forget(key string) {
	c.mu.Lock()
	delete(c.listed, key)
	c.dropLocked(key)
	c.mu.Unlock()
}

// Stats reports the cache's hits, misses and bytes held.
func (c *Backend) Stats() (hits, misses, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses, c.bytes
}
