package azure

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"redback/internal/storage"
)

var _ storage.Backend = (*Backend)(nil)

// DefaultBlockSize is the size of the blocks a Put stages.
const DefaultBlockSize = 8 << 20

// Config selects a container and prefix and how to reach them.
type Config struct {
	Container string
	Prefix    string // "" or ends with "/"
	Account   string // storage account name; may come from the environment
	Endpoint  string // blob service URL; default https://ACCOUNT.blob.core.windows.net/
	// BlockSize is the staged block size; 0 means DefaultBlockSize.
	BlockSize int
	// Getenv reads the credentials' environment; nil means os.Getenv.
	Getenv func(string) string
}

var containerRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)

// ParseURL parses an azblob:// location URL; it reads no environment.
// Errors never echo the URL's user info.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, errors.New("azblob: malformed URL (want azblob://container/prefix?account=NAME)")
	}
	if u.Scheme != "azblob" {
		return Config{}, fmt.Errorf("azblob: URL scheme %q, want azblob", u.Scheme)
	}
	if u.User != nil {
		return Config{}, errors.New("azblob: credentials in the URL are not allowed; use AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or an Azure identity")
	}
	c := Config{Container: u.Host, Prefix: strings.TrimPrefix(u.Path, "/")}
	for k, v := range u.Query() {
		if len(v) != 1 {
			return Config{}, fmt.Errorf("azblob: URL parameter %q given %d times", k, len(v))
		}
		switch k {
		case "account":
			c.Account = v[0]
		case "endpoint":
			c.Endpoint = v[0]
		default:
			return Config{}, fmt.Errorf("azblob: unknown URL parameter %q (known: account, endpoint)", k)
		}
	}
	if err := c.normalize(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) normalize() error {
	if c.Container == "" {
		return errors.New("azblob: URL has no container (want azblob://container/prefix)")
	}
	if !containerRE.MatchString(c.Container) {
		return fmt.Errorf("azblob: container name %q: want 3 to 63 of a-z, 0-9 and single '-'", c.Container)
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if err := storage.ValidatePrefix(c.Prefix); err != nil {
		return fmt.Errorf("azblob: prefix: %w", err)
	}
	if c.Endpoint != "" {
		e, err := url.Parse(c.Endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return errors.New("azblob: endpoint must be an http:// or https:// URL")
		}
		if e.User != nil || e.RawQuery != "" {
			return errors.New("azblob: endpoint must not contain credentials or a SAS token")
		}
	}
	return nil
}

// Location returns the azblob:// URL (no credentials).
func (c Config) Location() string {
	q := url.Values{}
	if c.Account != "" {
		q.Set("account", c.Account)
	}
	if c.Endpoint != "" {
		q.Set("endpoint", c.Endpoint)
	}
	u := url.URL{Scheme: "azblob", Host: c.Container, Path: "/" + c.Prefix, RawQuery: q.Encode()}
	return u.String()
}

// Backend stores objects as block blobs in one container under a prefix.
type Backend struct {
	cfg       Config
	container *container.Client
}

// Open parses rawURL and returns a backend for it.
func Open(ctx context.Context, rawURL string) (*Backend, error) {
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return New(ctx, c)
}

// New returns a backend for c, choosing the credentials as the package
// documentation says. It sends no request.
func New(_ context.Context, c Config) (*Backend, error) {
	if err := c.normalize(); err != nil {
		return nil, err
	}
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var client *azblob.Client
	var err error
	if cs := getenv("AZURE_STORAGE_CONNECTION_STRING"); cs != "" {
		client, err = azblob.NewClientFromConnectionString(cs, nil)
		if err != nil {
			// The SDK's message may quote the string, which holds the key.
			return nil, errors.New("azblob: AZURE_STORAGE_CONNECTION_STRING is not a valid connection string")
		}
	} else {
		if c.Account == "" {
			c.Account = getenv("AZURE_STORAGE_ACCOUNT")
		}
		if c.Account == "" {
			return nil, errors.New("azblob: no storage account: give account=NAME in the URL, AZURE_STORAGE_ACCOUNT or AZURE_STORAGE_CONNECTION_STRING")
		}
		endpoint := c.Endpoint
		if endpoint == "" {
			endpoint = "https://" + c.Account + ".blob.core.windows.net/"
		}
		if key := getenv("AZURE_STORAGE_KEY"); key != "" {
			cred, kerr := azblob.NewSharedKeyCredential(c.Account, key)
			if kerr != nil {
				return nil, errors.New("azblob: AZURE_STORAGE_KEY is not a valid account key")
			}
			client, err = azblob.NewClientWithSharedKeyCredential(endpoint, cred, nil)
		} else {
			cred, cerr := azidentity.NewDefaultAzureCredential(nil)
			if cerr != nil {
				return nil, fmt.Errorf("azblob: default Azure credential: %w", cerr)
			}
			client, err = azblob.NewClient(endpoint, cred, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("azblob: client: %w", err)
		}
	}
	return &Backend{cfg: c, container: client.ServiceClient().NewContainerClient(c.Container)}, nil
}

func (b *Backend) name(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	return b.cfg.Prefix + key, nil
}

// Put streams r into a block blob.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader) (storage.ObjectInfo, error) {
	name, err := b.name(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	return b.write(ctx, key, name, r, nil)
}

// write uploads r: one Put Blob when it fits a block, else staged blocks
// and a commit. ac (may be nil) conditions the Put Blob or the commit.
func (b *Backend) write(ctx context.Context, key, name string, r io.Reader, ac *blob.AccessConditions) (storage.ObjectInfo, error) {
	size := b.cfg.BlockSize
	if size <= 0 {
		size = DefaultBlockSize
	}
	bb := b.container.NewBlockBlobClient(name)
	buf := make([]byte, size)
	whole := md5.New()
	var ids []string
	var total int64
	var prefix string
	for i := 0; ; i++ {
		n, rerr := io.ReadFull(r, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, rerr)
		}
		if err := ctx.Err(); err != nil {
			return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
		}
		last := rerr != nil
		chunk := buf[:n]
		total += int64(n)
		whole.Write(chunk)
		sum := md5.Sum(chunk)
		if i == 0 && last {
			resp, err := bb.Upload(ctx, streaming.NopCloser(bytes.NewReader(chunk)), &blockblob.UploadOptions{
				TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
				HTTPHeaders:             &blob.HTTPHeaders{BlobContentMD5: sum[:]},
				AccessConditions:        ac,
			})
			if err != nil {
				return storage.ObjectInfo{}, b.wrap("put", key, err)
			}
			return storage.ObjectInfo{Key: key, Size: total, ModTime: deref(resp.LastModified), ETag: string(deref(resp.ETag))}, nil
		}
		if n > 0 {
			if prefix == "" {
				prefix = randomHex(16) // unique per Put: concurrent Puts of one key stage apart
			}
			id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%08d", prefix, i))
			_, err := bb.StageBlock(ctx, id, streaming.NopCloser(bytes.NewReader(chunk)), &blockblob.StageBlockOptions{
				TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
			})
			if err != nil {
				return storage.ObjectInfo{}, b.wrap("put", key, err)
			}
			ids = append(ids, id)
		}
		if last {
			break
		}
	}
	resp, err := bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentMD5: whole.Sum(nil)},
		AccessConditions: ac,
	})
	if err != nil {
		return storage.ObjectInfo{}, b.wrap("put", key, err)
	}
	return storage.ObjectInfo{Key: key, Size: total, ModTime: deref(resp.LastModified), ETag: string(deref(resp.ETag))}, nil
}

// PutIf writes data with If-None-Match: * or If-Match: <ETag>.
func (b *Backend) PutIf(ctx context.Context, key string, data []byte, cond storage.Condition) (storage.ObjectInfo, error) {
	name, err := b.name(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	mac := &blob.ModifiedAccessConditions{}
	if cond.IfAbsent {
		mac.IfNoneMatch = to(azcore.ETagAny)
	}
	if cond.IfMatch != "" {
		mac.IfMatch = to(azcore.ETag(cond.IfMatch))
	}
	fi, err := b.write(ctx, key, name, bytes.NewReader(data), &blob.AccessConditions{ModifiedAccessConditions: mac})
	if err == nil || !(cond.IfAbsent || cond.IfMatch != "") {
		return fi, err
	}
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists) {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w (%w)", key, storage.ErrPrecondition, err)
	}
	if cond.IfMatch != "" && errors.Is(err, storage.ErrPrecondition) {
		if _, serr := b.Stat(ctx, key); errors.Is(serr, storage.ErrNotExist) {
			return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, storage.ErrNotExist)
		}
	}
	return storage.ObjectInfo{}, err
}

// Get returns a reader over [off, off+length) of the blob. A reader of the
// whole blob checks its stored Content-MD5.
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
	opts := &blob.DownloadStreamOptions{}
	if off > 0 || length > 0 {
		opts.Range = blob.HTTPRange{Offset: off, Count: max(length, 0)}
	}
	resp, err := b.container.NewBlobClient(name).DownloadStream(ctx, opts)
	if err != nil {
		if bloberror.HasCode(err, bloberror.InvalidRange) || status(err) == 416 {
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, b.wrap("get", key, err)
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
	r := &reader{rc: body, key: key, b: b}
	if off == 0 && length < 0 && len(resp.ContentMD5) == md5.Size {
		r.h, r.want = md5.New(), resp.ContentMD5
	}
	return r, nil
}

// reader classifies read errors and checks the whole blob's MD5 at EOF.
type reader struct {
	rc   io.ReadCloser
	key  string
	b    *Backend
	h    hash.Hash // nil: no check
	want []byte
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if r.h != nil {
		r.h.Write(p[:n])
	}
	switch {
	case err == io.EOF && r.h != nil && !bytes.Equal(r.h.Sum(nil), r.want):
		return n, &storage.CorruptError{Key: r.key, What: fmt.Sprintf("content MD5 %s, the service stored %s",
			hex.EncodeToString(r.h.Sum(nil)), hex.EncodeToString(r.want))}
	case err != nil && err != io.EOF:
		return n, r.b.wrap("read", r.key, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.rc.Close() }

// Stat describes the blob.
func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	name, err := b.name(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	resp, err := b.container.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		return storage.ObjectInfo{}, b.wrap("stat", key, err)
	}
	return storage.ObjectInfo{Key: key, Size: deref(resp.ContentLength), ModTime: deref(resp.LastModified), ETag: string(deref(resp.ETag))}, nil
}

// List pages through the blobs under prefix (the service lists them in
// lexicographic order of their names).
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return err
	}
	p := b.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to(b.cfg.Prefix + prefix)})
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return b.wrap("list", prefix, err)
		}
		for _, it := range page.Segment.BlobItems {
			if it.Name == nil || it.Properties == nil {
				continue
			}
			key := strings.TrimPrefix(*it.Name, b.cfg.Prefix)
			if storage.ValidateKey(key) != nil {
				continue // names redback never writes
			}
			err := fn(storage.ObjectInfo{Key: key, Size: deref(it.Properties.ContentLength),
				ModTime: deref(it.Properties.LastModified), ETag: string(deref(it.Properties.ETag))})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes the blob; a missing blob is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	name, err := b.name(key)
	if err != nil {
		return err
	}
	if _, err := b.container.NewBlobClient(name).Delete(ctx, nil); err != nil {
		if werr := b.wrap("delete", key, err); !errors.Is(werr, storage.ErrNotExist) {
			return werr
		}
	}
	return nil
}

// Properties reports 8 connections.
func (b *Backend) Properties() storage.Properties { return storage.Properties{Connections: 8} }

// Location returns the azblob:// URL without credentials.
func (b *Backend) Location() string { return b.cfg.Location() }

// Close does nothing (the SDK's HTTP client is shared).
func (b *Backend) Close() error { return nil }

func status(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// wrap adds context to an SDK error and classifies it. The SDK's message
// holds the request URL (no secrets: shared keys sign headers, tokens
// travel in headers) and the service's answer.
func (b *Backend) wrap(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	st := status(err)
	switch {
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return fmt.Errorf("%s %s: container %q does not exist: %w", op, key, b.cfg.Container, err)
	case bloberror.HasCode(err, bloberror.BlobNotFound) || st == 404:
		return fmt.Errorf("%s %s: %w", op, key, storage.ErrNotExist)
	case st == 412 || bloberror.HasCode(err, bloberror.ConditionNotMet):
		return fmt.Errorf("%s %s: %w (%w)", op, key, storage.ErrPrecondition, err)
	case st == 401 || st == 403:
		return fmt.Errorf("%s %s: access denied by %s (check AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or the identity's role on the container): %w", op, key, b.Location(), err)
	case isTransient(st, err):
		return storage.Transient(fmt.Errorf("%s %s: %w", op, key, err))
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

func isTransient(st int, err error) bool {
	return st == 408 || st == 429 || st >= 500 || bloberror.HasCode(err, bloberror.MD5Mismatch) ||
		storage.IsConnectionError(err)
}

func to[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func randomHex(n int) string {
	p := make([]byte, n/2)
	_, _ = rand.Read(p)
	return hex.EncodeToString(p)
}
