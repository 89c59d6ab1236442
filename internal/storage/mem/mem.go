package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"redback/internal/storage"
)

var _ storage.Backend = (*Backend)(nil)

type object struct {
	data    []byte
	modTime time.Time
	etag    string
}

// Backend is an in-memory object store, safe for concurrent use. The zero
// value is not usable; call New.
type Backend struct {
	mu      sync.Mutex
	objects map[string]object
	version uint64 // source of ETags: every write gets a fresh one
	closed  bool
}

// New returns an empty in-memory backend.
func New() *Backend {
	return &Backend{objects: make(map[string]object)}
}

func (b *Backend) info(key string, o object) storage.ObjectInfo {
	return storage.ObjectInfo{Key: key, Size: int64(len(o.data)), ModTime: o.modTime, ETag: o.etag}
}

// store must be called with b.mu held.
func (b *Backend) store(key string, data []byte) storage.ObjectInfo {
	b.version++
	o := object{data: data, modTime: time.Now(), etag: strconv.FormatUint(b.version, 16)}
	b.objects[key] = o
	return b.info(key, o)
}

func (b *Backend) check(key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("mem: backend closed")
	}
	return nil
}

// Put reads r to EOF and then stores the object atomically.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader) (storage.ObjectInfo, error) {
	if err := b.check(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.store(key, buf.Bytes()), nil
}

// PutIf stores data only when cond holds.
func (b *Backend) PutIf(ctx context.Context, key string, data []byte, cond storage.Condition) (storage.ObjectInfo, error) {
	if err := b.check(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, ok := b.objects[key]
	switch {
	case cond.IfAbsent && ok:
		return storage.ObjectInfo{}, fmt.Errorf("put %s: object exists: %w", key, storage.ErrPrecondition)
	case cond.IfMatch != "" && !ok:
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, storage.ErrNotExist)
	case cond.IfMatch != "" && cur.etag != cond.IfMatch:
		return storage.ObjectInfo{}, fmt.Errorf("put %s: etag mismatch: %w", key, storage.ErrPrecondition)
	}
	return b.store(key, bytes.Clone(data)), nil
}

// Get returns the length bytes at off (to the end when length < 0).
func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := b.check(key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, off)
	}
	b.mu.Lock()
	o, ok := b.objects[key]
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, storage.ErrNotExist)
	}
	data := o.data // never mutated after store
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	data = data[off:]
	if length >= 0 && length < int64(len(data)) {
		data = data[:length]
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Stat describes the object at key.
func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := b.check(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, storage.ErrNotExist)
	}
	return b.info(key, o), nil
}

// List calls fn for each object under prefix in ascending key order. It
// works on a snapshot taken at the start, so fn may call other methods.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return err
	}
	b.mu.Lock()
	var infos []storage.ObjectInfo
	for k, o := range b.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, b.info(k, o))
		}
	}
	b.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes key; a missing key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(key); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.objects, key)
	return nil
}

// Properties reports 8 connections.
func (b *Backend) Properties() storage.Properties { return storage.Properties{Connections: 8} }

// Location returns "mem://".
func (b *Backend) Location() string { return "mem://" }

// Close makes later calls fail; the data is dropped.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.objects = map[string]object{}
	return nil
}
