package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"redback/internal/storage"
)

var _ storage.Backend = (*Backend)(nil)

// DefaultChunkSize is the resumable upload chunk size (a multiple of 256 KiB).
const DefaultChunkSize = 8 << 20

// Config selects a bucket and prefix.
type Config struct {
	Bucket string
	Prefix string // "" or ends with "/"
	// ChunkSize is the upload chunk size; 0 means DefaultChunkSize.
	ChunkSize int
	// ClientOptions are passed to the client (tests); nil means ADC.
	ClientOptions []option.ClientOption
}

// ParseURL parses a gs:// location URL. Errors never echo the URL's user
// info.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, errors.New("gs: malformed URL (want gs://bucket/prefix)")
	}
	if u.Scheme != "gs" {
		return Config{}, fmt.Errorf("gs: URL scheme %q, want gs", u.Scheme)
	}
	if u.User != nil {
		return Config{}, errors.New("gs: credentials in the URL are not allowed; use Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS)")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Config{}, errors.New("gs: the URL takes no parameters (want gs://bucket/prefix)")
	}
	c := Config{Bucket: u.Host, Prefix: strings.TrimPrefix(u.Path, "/")}
	if c.Bucket == "" {
		return Config{}, errors.New("gs: URL has no bucket (want gs://bucket/prefix)")
	}
	if err := c.normalize(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) normalize() error {
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if err := storage.ValidatePrefix(c.Prefix); err != nil {
		return fmt.Errorf("gs: prefix: %w", err)
	}
	if len(c.Bucket) < 3 || len(c.Bucket) > 222 || strings.ContainsAny(c.Bucket, "/:@ ") {
		return fmt.Errorf("gs: bucket name %q: want 3 to 222 characters of a-z, 0-9, '-', '_' and '.'", c.Bucket)
	}
	return nil
}

// Location returns the gs:// URL.
func (c Config) Location() string { return "gs://" + c.Bucket + "/" + c.Prefix }

// Backend stores objects in one bucket under a prefix.
type Backend struct {
	cfg    Config
	client *gcs.Client
	bucket *gcs.BucketHandle
}

// Open parses rawURL and returns a backend for it.
func Open(ctx context.Context, rawURL string) (*Backend, error) {
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return New(ctx, c)
}

// New returns a backend for c. It sends no request; credentials are
// found now (ADC) but used on the first request.
func New(ctx context.Context, c Config) (*Backend, error) {
	if err := c.normalize(); err != nil {
		return nil, err
	}
	client, err := gcs.NewClient(ctx, c.ClientOptions...)
	if err != nil {
		return nil, fmt.Errorf("gs: client (Application Default Credentials): %w", err)
	}
	return &Backend{cfg: c, client: client, bucket: client.Bucket(c.Bucket)}, nil
}

func (b *Backend) object(key string) (*gcs.ObjectHandle, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	return b.bucket.Object(b.cfg.Prefix + key), nil
}

// etag is the object's generation in decimal: what PutIf's IfMatch takes.
func etag(gen int64) string { return strconv.FormatInt(gen, 10) }

func info(key string, a *gcs.ObjectAttrs) storage.ObjectInfo {
	return storage.ObjectInfo{Key: key, Size: a.Size, ModTime: a.Updated, ETag: etag(a.Generation)}
}

// Put streams r into the object with a resumable upload.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader) (storage.ObjectInfo, error) {
	o, err := b.object(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	// Overwriting with the same bytes is harmless, so every chunk may be
	// retried even without a precondition.
	return b.write(ctx, key, o.Retryer(gcs.WithPolicy(gcs.RetryAlways)), r)
}

// write uploads r to o; a read error or the end of ctx cancels the upload
// so that nothing becomes visible.
func (b *Backend) write(ctx context.Context, key string, o *gcs.ObjectHandle, r io.Reader) (storage.ObjectInfo, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := o.NewWriter(wctx)
	w.ChunkSize = DefaultChunkSize
	if b.cfg.ChunkSize > 0 {
		w.ChunkSize = b.cfg.ChunkSize
	}
	if _, err := io.Copy(w, r); err != nil {
		cancel()
		_ = w.Close()
		return storage.ObjectInfo{}, b.wrap("put", key, err)
	}
	if err := w.Close(); err != nil {
		return storage.ObjectInfo{}, b.wrap("put", key, err)
	}
	return info(key, w.Attrs()), nil
}

// PutIf writes data under a generation precondition.
func (b *Backend) PutIf(ctx context.Context, key string, data []byte, cond storage.Condition) (storage.ObjectInfo, error) {
	o, err := b.object(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	var c gcs.Conditions
	switch {
	case cond.IfAbsent:
		c.DoesNotExist = true
	case cond.IfMatch != "":
		gen, err := strconv.ParseInt(cond.IfMatch, 10, 64)
		if err != nil || gen <= 0 {
			return storage.ObjectInfo{}, fmt.Errorf("put %s: %w (ETag %q is not a GCS generation)", key, storage.ErrPrecondition, cond.IfMatch)
		}
		c.GenerationMatch = gen
	}
	if c != (gcs.Conditions{}) {
		o = o.If(c)
	}
	fi, err := b.write(ctx, key, o, bytes.NewReader(data))
	if cond.IfMatch != "" && errors.Is(err, storage.ErrPrecondition) {
		// GCS answers 412 for a missing object too; the contract says
		// ErrNotExist then.
		if _, serr := b.Stat(ctx, key); errors.Is(serr, storage.ErrNotExist) {
			return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, storage.ErrNotExist)
		}
	}
	return fi, err
}

// Get returns a reader over [off, off+length) of the object. A reader of
// the whole object reports a CRC32C mismatch as *storage.CorruptError.
func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	o, err := b.object(key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, off)
	}
	if length == 0 {
		if _, err := b.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	r, err := o.NewRangeReader(ctx, off, length)
	if err != nil {
		if st := httpStatus(err); st == 416 {
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, b.wrap("get", key, err)
	}
	return &reader{r: r, key: key, b: b}, nil
}

// reader classifies the client's read errors.
type reader struct {
	r   *gcs.Reader
	key string
	b   *Backend
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.wrap("read", r.key, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.r.Close() }

// Stat describes the object.
func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	o, err := b.object(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	a, err := o.Attrs(ctx)
	if err != nil {
		return storage.ObjectInfo{}, b.wrap("stat", key, err)
	}
	return info(key, a), nil
}

// List pages through the objects under prefix (the service lists them in
// lexicographic order of their names).
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return err
	}
	q := &gcs.Query{Prefix: b.cfg.Prefix + prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Updated", "Generation"}); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	it := b.bucket.Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return b.wrap("list", prefix, err)
		}
		key := strings.TrimPrefix(a.Name, b.cfg.Prefix)
		if storage.ValidateKey(key) != nil {
			continue // "dir/" placeholders and other names redback never writes
		}
		if err := fn(info(key, a)); err != nil {
			return err
		}
	}
}

// Delete removes the object; a missing object is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	o, err := b.object(key)
	if err != nil {
		return err
	}
	if err := o.Delete(ctx); err != nil {
		if werr := b.wrap("delete", key, err); !errors.Is(werr, storage.ErrNotExist) {
			return werr
		}
	}
	return nil
}

// Properties reports 8 connections.
func (b *Backend) Properties() storage.Properties { return storage.Properties{Connections: 8} }

// Location returns the gs:// URL.
func (b *Backend) Location() string { return b.cfg.Location() }

// Close closes the client.
func (b *Backend) Close() error { return b.client.Close() }

func httpStatus(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// wrap adds context to a client error and classifies it.
func (b *Backend) wrap(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	st := httpStatus(err)
	switch {
	case errors.Is(err, gcs.ErrBucketNotExist):
		return fmt.Errorf("%s %s: bucket %q does not exist: %w", op, key, b.cfg.Bucket, err)
	case errors.Is(err, gcs.ErrObjectNotExist) || st == 404:
		return fmt.Errorf("%s %s: %w", op, key, storage.ErrNotExist)
	case st == 412:
		return fmt.Errorf("%s %s: %w (%w)", op, key, storage.ErrPrecondition, err)
	case op == "read" && isChecksumMismatch(err):
		return &storage.CorruptError{Key: key, What: "CRC32C mismatch: " + err.Error()}
	case st == 401 || st == 403:
		return fmt.Errorf("%s %s: access denied by %s (check Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS or the workload's service account, and its roles on the bucket): %w", op, key, b.Location(), err)
	case isTransient(st, err):
		return storage.Transient(fmt.Errorf("%s %s: %w", op, key, err))
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

// isChecksumMismatch recognises the client's CRC32C failure on a read
// (its sentinel is not exported).
func isChecksumMismatch(err error) bool {
	s := err.Error()
	return strings.Contains(s, "checksum mismatch") || strings.Contains(s, "bad CRC")
}

func isTransient(st int, err error) bool {
	return st == 408 || st == 429 || st >= 500 || storage.IsConnectionError(err)
}
