package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"redback/internal/atomicfile"
	"redback/internal/storage"
)

var _ storage.Backend = (*Backend)(nil)

const (
	reservedPrefix = ".redback-"
	tmpPattern     = ".redback-tmp-*"
	lockName       = ".redback-lock"
)

// Backend stores objects as files under a root directory.
type Backend struct {
	root string // absolute, cleaned
}

// ParseURL checks a plain path or a "file:///abs/path" URL and returns the
// absolute directory it names, without touching the file system.
func ParseURL(dir string) (string, error) {
	if strings.HasPrefix(dir, "file:") {
		u, err := url.Parse(dir)
		if err != nil {
			return "", fmt.Errorf("%w: file: invalid URL %q", storage.ErrInvalidLocation, dir)
		}
		if u.Host != "" && u.Host != "localhost" {
			return "", fmt.Errorf("%w: file: URL %q: remote host %q is not supported (use file:///abs/path)", storage.ErrInvalidLocation, dir, u.Host)
		}
		if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
			return "", fmt.Errorf("%w: file: URL %q: want an absolute path, like file:///var/backups/redis", storage.ErrInvalidLocation, dir)
		}
		dir = u.Path
	}
	if dir == "" {
		return "", fmt.Errorf("%w: file: empty directory path", storage.ErrInvalidLocation)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("file: %w", err)
	}
	return abs, nil
}

// New returns a backend rooted at dir, given as a plain path (made
// absolute) or a "file:///abs/path" URL. The directory is created by the
// first write.
func New(dir string) (*Backend, error) {
	abs, err := ParseURL(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("file: %s is not a directory", abs)
	}
	return &Backend{root: abs}, nil
}

func (b *Backend) path(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	for _, e := range strings.Split(key, "/") {
		if strings.HasPrefix(e, reservedPrefix) {
			return "", fmt.Errorf("%w %q: names starting with %q are reserved", storage.ErrInvalidKey, key, reservedPrefix)
		}
	}
	return filepath.Join(b.root, filepath.FromSlash(key)), nil
}

// notExist reports whether err means "no such object", including a path
// component that is a regular file.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func etag(fi fs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = uint64(st.Ino)
	}
	return fmt.Sprintf("%x-%x-%x", ino, fi.Size(), fi.ModTime().UnixNano())
}

func info(key string, fi fs.FileInfo) storage.ObjectInfo {
	return storage.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), ETag: etag(fi)}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// writeTemp copies r into a new fsynced temporary file in dir and returns
// its name. On error the file is removed.
func writeTemp(ctx context.Context, dir string, r io.Reader) (name string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, tmpPattern)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = io.Copy(&atomicfile.Writer{F: f}, ctxReader{ctx, r}); err != nil {
		return "", err
	}
	if err = ctx.Err(); err != nil {
		return "", err
	}
	if err = f.Sync(); err != nil {
		return "", err
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// settled fsyncs the directory of p, whose name is new (so it survives a
// crash), and returns its info as the object key.
func settled(key, p string) (storage.ObjectInfo, error) {
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil {
		return storage.ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	return info(key, fi), nil
}

// publish renames tmp to p, fsyncs the directory and returns the new
// object's info.
func publish(key, tmp, p string) (storage.ObjectInfo, error) {
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return storage.ObjectInfo{}, err
	}
	return settled(key, p)
}

// Put writes r to a temporary file and renames it to key.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader) (storage.ObjectInfo, error) {
	p, err := b.path(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	tmp, err := writeTemp(ctx, filepath.Dir(p), r)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	fi, err := publish(key, tmp, p)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	return fi, nil
}

// PutIf writes data when cond holds; see the package documentation for
// the guarantees.
func (b *Backend) PutIf(ctx context.Context, key string, data []byte, cond storage.Condition) (storage.ObjectInfo, error) {
	p, err := b.path(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	if !cond.IfAbsent && cond.IfMatch == "" {
		return b.Put(ctx, key, bytes.NewReader(data))
	}
	if cond.IfAbsent {
		fi, err := b.putIfAbsent(ctx, key, p, data)
		if err != nil {
			return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
		}
		return fi, nil
	}
	fi, err := b.putIfMatch(ctx, key, p, data, cond.IfMatch)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	return fi, nil
}

func (b *Backend) putIfAbsent(ctx context.Context, key, p string, data []byte) (storage.ObjectInfo, error) {
	tmp, err := writeTemp(ctx, filepath.Dir(p), bytes.NewReader(data))
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return storage.ObjectInfo{}, fmt.Errorf("object exists: %w", storage.ErrPrecondition)
		}
		return storage.ObjectInfo{}, err
	}
	if err := os.Remove(tmp); err != nil {
		return storage.ObjectInfo{}, err
	}
	return settled(key, p)
}

func (b *Backend) putIfMatch(ctx context.Context, key, p string, data []byte, want string) (storage.ObjectInfo, error) {
	unlock, err := b.lock(ctx)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	defer unlock()
	fi, err := os.Stat(p)
	switch {
	case notExist(err) || err == nil && fi.IsDir():
		return storage.ObjectInfo{}, storage.ErrNotExist
	case err != nil:
		return storage.ObjectInfo{}, err
	case etag(fi) != want:
		return storage.ObjectInfo{}, fmt.Errorf("etag %s does not match %s: %w", etag(fi), want, storage.ErrPrecondition)
	}
	tmp, err := writeTemp(ctx, filepath.Dir(p), bytes.NewReader(data))
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	return publish(key, tmp, p)
}

// lock takes the exclusive repository lock used by PutIf IfMatch.
func (b *Backend) lock(ctx context.Context) (unlock func(), err error) {
	if err := os.MkdirAll(b.root, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(b.root, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	// Poll with a non-blocking flock so that ctx can end the wait.
	delay := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

type sectionReadCloser struct {
	*io.SectionReader
	f *os.File
}

func (s sectionReadCloser) Close() error { return s.f.Close() }

// Get opens key and returns a reader over [off, off+length).
func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, off)
	}
	f, err := os.Open(p)
	if err != nil {
		if notExist(err) {
			return nil, fmt.Errorf("get %s: %w", key, storage.ErrNotExist)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if fi.IsDir() {
		_ = f.Close()
		return nil, fmt.Errorf("get %s: %w", key, storage.ErrNotExist)
	}
	off = min(off, fi.Size())
	n := fi.Size() - off
	if length >= 0 {
		n = min(n, length)
	}
	return sectionReadCloser{io.NewSectionReader(f, off, n), f}, nil
}

// Stat describes key.
func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	p, err := b.path(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if notExist(err) {
			return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, storage.ErrNotExist)
		}
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if fi.IsDir() {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, storage.ErrNotExist)
	}
	return info(key, fi), nil
}

// List walks the directories that can hold keys starting with prefix,
// visiting entries in key order (a directory "a" sorts as "a/").
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return err
	}
	dir := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i]
	}
	return b.walk(ctx, dir, prefix, "list", isKey, fn)
}

// walk visits, in key order (a directory "a" sorts as "a/"), the regular
// files under dir whose keys start with prefix and whose names pass keep,
// descending only into the directories that can hold such keys (never
// into reserved ones). what names the listing in errors.
func (b *Backend) walk(ctx context.Context, dir, prefix, what string, keep func(name string) bool, fn func(storage.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(b.root, filepath.FromSlash(dir)))
	if err != nil {
		if notExist(err) {
			return nil
		}
		return fmt.Errorf("%s %s: %w", what, prefix, err)
	}
	type entry struct {
		sortKey string
		d       fs.DirEntry
	}
	es := make([]entry, 0, len(entries))
	for _, d := range entries {
		k := d.Name()
		if d.IsDir() {
			if strings.HasPrefix(k, reservedPrefix) {
				continue
			}
			k += "/"
		}
		es = append(es, entry{k, d})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].sortKey < es[j].sortKey })
	for _, e := range es {
		key := path.Join(dir, e.d.Name())
		switch {
		case e.d.IsDir():
			if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
				if err := b.walk(ctx, key, prefix, what, keep, fn); err != nil {
					return err
				}
			}
		case e.d.Type().IsRegular() && keep(e.d.Name()) && strings.HasPrefix(key, prefix):
			fi, err := e.d.Info()
			if notExist(err) {
				continue // deleted (published) meanwhile
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", what, prefix, err)
			}
			if err := fn(info(key, fi)); err != nil {
				return err
			}
		}
	}
	return nil
}

// isKey reports whether name can be (the last element of) a key: not a
// reserved name such as a staging file.
func isKey(name string) bool { return !strings.HasPrefix(name, reservedPrefix) }

// Delete removes key; a missing key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if notExist(err) || err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		err = os.Remove(p)
	}
	if err != nil && !notExist(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil && !notExist(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Properties reports 4 connections.
func (b *Backend) Properties() storage.Properties { return storage.Properties{Connections: 4} }

// Location returns the root as a file:// URL.
func (b *Backend) Location() string { return "file://" + filepath.ToSlash(b.root) }

// Close does nothing; the backend holds no resources between calls.
func (b *Backend) Close() error { return nil }

var _ storage.TempFiler = (*Backend)(nil)

// ListTemps reports the staging files (".redback-tmp-*") under prefix that
// a writer killed between writeTemp and publish left behind: Key is the
// file's path under the root, ModTime its last write (a writer in flight
// keeps writing, so its file stays young).
func (b *Backend) ListTemps(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return err
	}
	return b.walk(ctx, "", prefix, "list temporary files under", isTemp, fn)
}

// isTemp reports whether name is one writeTemp makes.
func isTemp(name string) bool {
	ok, _ := path.Match(tmpPattern, name)
	return ok
}

// RemoveTemp removes a staging file ListTemps reported; one already gone
// is not an error.
func (b *Backend) RemoveTemp(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, name := path.Split(key)
	if !isTemp(name) || (dir != "" && storage.ValidateKey(strings.TrimSuffix(dir, "/")) != nil) {
		return fmt.Errorf("remove temporary file %s: %w: not a temporary file", key, storage.ErrInvalidKey)
	}
	p := filepath.Join(b.root, filepath.FromSlash(key))
	if err := os.Remove(p); err != nil && !notExist(err) {
		return fmt.Errorf("remove temporary file %s: %w", key, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil && !notExist(err) {
		return fmt.Errorf("remove temporary file %s: %w", key, err)
	}
	return nil
}
