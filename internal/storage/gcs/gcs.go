package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"redback/internal/storage"
)

var _ storage.Backend = (*Backend)(nil)

const (
	// DefaultChunkSize is the resumable upload chunk size (a multiple of
	// 256 KiB).
	DefaultChunkSize = 8 << 20
	// DefaultPageSize is how many objects one List request asks for (the
	// service's maximum).
	DefaultPageSize = 1000
	// DefaultEndpoint is the service's base URL.
	DefaultEndpoint = "https://storage.googleapis.com"
	// Scope is the OAuth2 scope asked of Application Default Credentials:
	// read and write objects, nothing else.
	Scope = "https://www.googleapis.com/auth/devstorage.read_write"
	// EmulatorEnv names the emulator's host:port (or base URL); when it
	// is set requests go there, without credentials.
	EmulatorEnv = "STORAGE_EMULATOR_HOST"

	chunkAlign = 256 << 10 // resumable chunks are multiples of this
)

// Config selects a bucket and prefix.
type Config struct {
	Bucket string
	Prefix string // "" or ends with "/"
	// ChunkSize is the upload chunk size, rounded up to a multiple of
	// 256 KiB; 0 means DefaultChunkSize.
	ChunkSize int
	// PageSize is the number of objects per List request; 0 means
	// DefaultPageSize.
	PageSize int
	// Endpoint is the base URL requests go to; "" means the value of
	// STORAGE_EMULATOR_HOST when set, else DefaultEndpoint. An Endpoint
	// set here gets no credentials unless TokenSource is set (tests).
	Endpoint string
	// TokenSource authorizes every request; nil means Application
	// Default Credentials, or none with an emulator or an Endpoint.
	TokenSource oauth2.TokenSource
	// HTTPClient sends the requests (credentials are added on top of its
	// Transport); nil means a client of the backend's own.
	HTTPClient *http.Client
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
	if c.ChunkSize <= 0 {
		c.ChunkSize = DefaultChunkSize
	}
	c.ChunkSize = (c.ChunkSize + chunkAlign - 1) / chunkAlign * chunkAlign
	if c.PageSize <= 0 {
		c.PageSize = DefaultPageSize
	}
	return nil
}

// Location returns the gs:// URL.
func (c Config) Location() string { return "gs://" + c.Bucket + "/" + c.Prefix }

// endpoint returns the base URL requests go to and whether it is the
// emulator named by STORAGE_EMULATOR_HOST.
func (c Config) endpoint() (string, bool, error) {
	base, emulator := c.Endpoint, false
	if base == "" {
		base = os.Getenv(EmulatorEnv)
		emulator = base != ""
	}
	if base == "" {
		return DefaultEndpoint, false, nil
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.RawQuery != "" {
		what := "endpoint"
		if emulator {
			what = EmulatorEnv
		}
		return "", false, fmt.Errorf("gs: %s: want host:port or http(s)://host:port", what)
	}
	return u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/"), emulator, nil
}

// Backend stores objects in one bucket under a prefix.
type Backend struct {
	cfg    Config
	base   *url.URL     // the service's base URL
	client *http.Client // adds credentials, never follows redirects
	own    *http.Transport
}

// Open parses rawURL and returns a backend for it.
func Open(ctx context.Context, rawURL string) (*Backend, error) {
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return New(ctx, c)
}

// New returns a backend for c. It sends no request to the store;
// credentials are found now (Application Default Credentials, which may
// ask the metadata server whether this is a Google Cloud machine) and
// used on the first request.
func New(ctx context.Context, c Config) (*Backend, error) {
	if err := c.normalize(); err != nil {
		return nil, err
	}
	base, emulator, err := c.endpoint()
	if err != nil {
		return nil, err
	}
	b := &Backend{cfg: c}
	b.base, _ = url.Parse(base)
	var rt http.RoundTripper
	if c.HTTPClient != nil {
		rt = c.HTTPClient.Transport
	}
	if rt == nil {
		b.own = http.DefaultTransport.(*http.Transport).Clone()
		b.own.MaxIdleConnsPerHost = 2 * b.Properties().Connections
		rt = b.own
	}
	ts := c.TokenSource
	if ts == nil && !emulator && c.Endpoint == "" {
		if ts, err = adc(ctx); err != nil {
			return nil, err
		}
	}
	if ts != nil {
		rt = &oauth2.Transport{Source: oauth2.ReuseTokenSource(nil, ts), Base: rt}
	}
	b.client = &http.Client{
		Transport: rt,
		// Resumable uploads answer 308 for "send more": never a redirect.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return b, nil
}

// adc finds Application Default Credentials for Scope:
// GOOGLE_APPLICATION_CREDENTIALS (a service account key, workload
// identity federation, ...), then gcloud's application-default login,
// then the metadata server of a Google Cloud machine.
func adc(ctx context.Context) (oauth2.TokenSource, error) {
	// The token source refreshes with this context long after New
	// returns: it must outlive ctx's cancellation.
	creds, err := google.FindDefaultCredentials(context.WithoutCancel(ctx), Scope)
	if err != nil {
		return nil, fmt.Errorf("gs: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud auth application-default login, or the metadata server of a Google Cloud machine): %w", err)
	}
	return creds.TokenSource, nil
}

func (b *Backend) name(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	return b.cfg.Prefix + key, nil
}

// object is the part of the JSON API's object resource redback uses.
type object struct {
	Name       string    `json:"name"`
	Size       int64     `json:"size,string"`
	Generation int64     `json:"generation,string"`
	Updated    time.Time `json:"updated"`
	CRC32C     string    `json:"crc32c"`
}

// info describes o as the object key; its ETag is the generation in
// decimal, what PutIf's IfMatch takes.
func (o *object) info(key string) storage.ObjectInfo {
	return storage.ObjectInfo{Key: key, Size: o.Size, ModTime: o.Updated, ETag: strconv.FormatInt(o.Generation, 10)}
}

// Put streams r into the object: one request when it fits in a chunk,
// else a resumable upload.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader) (storage.ObjectInfo, error) {
	name, err := b.name(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	buf, eof, err := fill(r, nil, b.cfg.ChunkSize)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: reading the data: %w", key, err)
	}
	// Overwriting with the same bytes is harmless, so every request may
	// be retried even without a precondition.
	var o *object
	if eof {
		o, err = b.insert(ctx, name, buf, nil, true)
	} else {
		o, err = b.resumable(ctx, key, name, buf, r)
	}
	if err != nil {
		return storage.ObjectInfo{}, b.wrap("put", key, err)
	}
	return o.info(key), nil
}

// PutIf writes data under a generation precondition.
func (b *Backend) PutIf(ctx context.Context, key string, data []byte, cond storage.Condition) (storage.ObjectInfo, error) {
	name, err := b.name(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	q := url.Values{}
	switch {
	case cond.IfAbsent:
		q.Set("ifGenerationMatch", "0")
	case cond.IfMatch != "":
		gen, err := strconv.ParseInt(cond.IfMatch, 10, 64)
		if err != nil || gen <= 0 {
			return storage.ObjectInfo{}, fmt.Errorf("put %s: %w (ETag %q is not a GCS generation)", key, storage.ErrPrecondition, cond.IfMatch)
		}
		q.Set("ifGenerationMatch", cond.IfMatch)
	}
	// No retry here: a conditional write whose answer was lost would fail
	// its own precondition when sent again. The retry decorator decides.
	o, err := b.insert(ctx, name, data, q, false)
	if err != nil {
		err = b.wrap("put", key, err)
		if cond.IfMatch != "" && errors.Is(err, storage.ErrPrecondition) {
			// GCS answers 412 for a missing object too; the contract says
			// ErrNotExist then.
			if _, serr := b.Stat(ctx, key); errors.Is(serr, storage.ErrNotExist) {
				return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, storage.ErrNotExist)
			}
		}
		return storage.ObjectInfo{}, err
	}
	return o.info(key), nil
}

// Get returns a reader over [off, off+length) of the object. A reader of
// the whole object reports a CRC32C mismatch as *storage.CorruptError.
func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	name, err := b.name(key)
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
	ranged := off > 0 || length > 0
	resp, err := b.do(ctx, false, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.objectURL(name, url.Values{"alt": {"media"}}), nil)
		if err == nil && ranged {
			rng := fmt.Sprintf("bytes=%d-", off)
			if length > 0 {
				rng += strconv.FormatInt(off+length-1, 10)
			}
			req.Header.Set("Range", rng)
		}
		return req, err
	})
	if err != nil {
		if status(err) == http.StatusRequestedRangeNotSatisfiable {
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, b.wrap("get", key, err)
	}
	r := &reader{rc: resp.Body, body: resp.Body, key: key, b: b}
	switch {
	case ranged && resp.StatusCode == http.StatusOK:
		// The whole object came back (a server that ignores Range, or
		// one serving a gzip-stored object decompressed): cut the range
		// out of it.
		if _, err := io.CopyN(io.Discard, resp.Body, off); err != nil {
			_ = resp.Body.Close()
			if errors.Is(err, io.EOF) {
				return io.NopCloser(bytes.NewReader(nil)), nil
			}
			return nil, b.wrap("get", key, err)
		}
		if length > 0 {
			r.body = io.LimitReader(resp.Body, length)
		}
	case !ranged && !resp.Uncompressed && storedAsIs(resp.Header):
		if want, ok := storedCRC32C(resp.Header); ok {
			r.h, r.want = crc32.New(castagnoli), want
		}
	}
	return r, nil
}

// storedAsIs reports whether a download serves the stored bytes (the
// stored CRC32C covers them), not a decompressed gzip-encoded object.
func storedAsIs(h http.Header) bool {
	enc := h.Get("X-Goog-Stored-Content-Encoding")
	return (enc == "" || enc == "identity") && h.Get("Content-Encoding") == ""
}

// reader classifies read errors and checks a whole object's CRC32C.
type reader struct {
	rc   io.Closer
	body io.Reader
	key  string
	b    *Backend
	h    hash.Hash32 // nil: not checked
	want uint32
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if r.h != nil {
		r.h.Write(p[:n])
	}
	switch {
	case err == io.EOF && r.h != nil && r.h.Sum32() != r.want:
		return n, &storage.CorruptError{Key: r.key, What: fmt.Sprintf("CRC32C mismatch: the bytes read have %s, the service stored %s",
			encodeCRC(r.h.Sum32()), encodeCRC(r.want))}
	case err != nil && err != io.EOF:
		return n, r.b.wrap("read", r.key, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.rc.Close() }

// Stat describes the object.
func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	name, err := b.name(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	var o object
	q := url.Values{"fields": {"name,size,generation,updated"}}
	if err := b.getJSON(ctx, b.objectURL(name, q), &o); err != nil {
		return storage.ObjectInfo{}, b.wrap("stat", key, err)
	}
	return o.info(key), nil
}

// List pages through the objects under prefix (the service lists them in
// lexicographic order of their names).
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return err
	}
	q := url.Values{
		"prefix":     {b.cfg.Prefix + prefix},
		"maxResults": {strconv.Itoa(b.cfg.PageSize)},
		"projection": {"noAcl"},
		"fields":     {"items(name,size,generation,updated),nextPageToken"},
	}
	for {
		var page struct {
			Items         []object `json:"items"`
			NextPageToken string   `json:"nextPageToken"`
		}
		u := b.apiURL("/storage/v1/b/" + url.PathEscape(b.cfg.Bucket) + "/o")
		if err := b.getJSON(ctx, u+"?"+q.Encode(), &page); err != nil {
			return b.wrap("list", prefix, err)
		}
		for i := range page.Items {
			key := strings.TrimPrefix(page.Items[i].Name, b.cfg.Prefix)
			if storage.ValidateKey(key) != nil {
				continue // "dir/" placeholders and other names redback never writes
			}
			if err := fn(page.Items[i].info(key)); err != nil {
				return err
			}
		}
		if page.NextPageToken == "" || page.NextPageToken == q.Get("pageToken") {
			return nil
		}
		q.Set("pageToken", page.NextPageToken)
	}
}

// Delete removes the object; a missing object is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	name, err := b.name(key)
	if err != nil {
		return err
	}
	if err := b.delete(ctx, name, nil); err != nil {
		if werr := b.wrap("delete", key, err); !errors.Is(werr, storage.ErrNotExist) {
			return werr
		}
	}
	return nil
}

func (b *Backend) delete(ctx context.Context, name string, q url.Values) error {
	resp, err := b.do(ctx, false, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodDelete, b.objectURL(name, q), nil)
	})
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// Properties reports 8 connections.
func (b *Backend) Properties() storage.Properties { return storage.Properties{Connections: 8} }

// Location returns the gs:// URL.
func (b *Backend) Location() string { return b.cfg.Location() }

// Close closes the idle connections of the backend's own transport.
func (b *Backend) Close() error {
	if b.own != nil {
		b.own.CloseIdleConnections()
	}
	return nil
}

// wrap adds context to an error of a request and classifies it.
func (b *Backend) wrap(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	var ae *apiError
	errors.As(err, &ae)
	st := status(err)
	switch {
	case st == http.StatusNotFound && (op == "list" || op == "put" || ae.bucketMissing()):
		return fmt.Errorf("%s %s: bucket %q does not exist: %w", op, key, b.cfg.Bucket, err)
	case st == http.StatusNotFound:
		return fmt.Errorf("%s %s: %w", op, key, storage.ErrNotExist)
	case st == http.StatusPreconditionFailed:
		return fmt.Errorf("%s %s: %w (%w)", op, key, storage.ErrPrecondition, err)
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		return fmt.Errorf("%s %s: access denied by %s (check Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS or the workload's service account, and its roles on the bucket): %w", op, key, b.Location(), err)
	case isTransient(err):
		return storage.Transient(fmt.Errorf("%s %s: %w", op, key, err))
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}
