package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"redback/internal/storage"
)

var _ storage.Backend = (*Backend)(nil)

const (
	// DefaultPartSize is the multipart upload part size.
	DefaultPartSize = 8 << 20
	// DefaultUploadConcurrency is how many parts of one Put are in flight.
	DefaultUploadConcurrency = 2
	// abortTimeout bounds the abort of a failed multipart upload, which runs
	// on a fresh context even when the caller's has ended; if it fails, a
	// bucket lifecycle rule cleans up what is left.
	abortTimeout = 30 * time.Second
	// DefaultRegion is used when neither the URL nor the environment sets one.
	DefaultRegion = "us-east-1"
)

// Config selects a bucket and prefix and how to reach them.
type Config struct {
	Bucket       string
	Prefix       string // "" or ends with "/"
	Endpoint     string // e.g. "http://127.0.0.1:7070"; empty means AWS
	Region       string
	UsePathStyle bool
	SSE          string // "AES256" or "aws:kms"; empty: bucket default
	SSEKMSKeyID  string
	// ObjectLock is the S3 Object Lock mode set on every object written
	// ("COMPLIANCE" or "GOVERNANCE"; empty: none), for Retain after the
	// write. The bucket must have Object Lock enabled.
	ObjectLock string
	Retain     time.Duration

	// PartSize is the multipart upload part size; 0 means DefaultPartSize.
	// S3 needs at least 5 MiB.
	PartSize int64
	// RetryMaxAttempts is how many times the SDK tries each HTTP request
	// (a part, a HeadObject); 0 means the SDK default (3). Retries of
	// whole operations belong to the retry decorator.
	RetryMaxAttempts int

	// Credentials overrides the SDK's default chain when not nil.
	Credentials aws.CredentialsProvider
}

// ParseURL parses an s3:// location URL (see the package documentation).
// Errors never echo the URL's user info.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, errors.New("s3: malformed URL (want s3://bucket/prefix?region=R)")
	}
	if u.Scheme != "s3" {
		return Config{}, fmt.Errorf("s3: URL scheme %q, want s3", u.Scheme)
	}
	if u.User != nil {
		return Config{}, errors.New("s3: credentials in the URL are not allowed; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile")
	}
	c := Config{Bucket: u.Host, Prefix: strings.TrimPrefix(u.Path, "/")}
	if c.Bucket == "" {
		return Config{}, errors.New("s3: URL has no bucket (want s3://bucket/prefix)")
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if err := storage.ValidatePrefix(c.Prefix); err != nil {
		return Config{}, fmt.Errorf("s3: prefix: %w", err)
	}
	q := u.Query()
	for k, v := range q {
		if len(v) != 1 {
			return Config{}, fmt.Errorf("s3: URL parameter %q given %d times", k, len(v))
		}
		switch k {
		case "endpoint":
			c.Endpoint = v[0]
		case "region":
			c.Region = v[0]
		case "use_path_style":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return Config{}, fmt.Errorf("s3: use_path_style=%q: want true or false", v[0])
			}
			c.UsePathStyle = b
		case "sse":
			c.SSE = v[0]
		case "sse_kms_key_id", "kms_key_id":
			if c.SSEKMSKeyID != "" && c.SSEKMSKeyID != v[0] {
				return Config{}, errors.New("s3: kms_key_id and sse_kms_key_id differ")
			}
			c.SSEKMSKeyID = v[0]
		case "object_lock":
			c.ObjectLock = strings.ToUpper(v[0])
		case "retain":
			d, err := storage.ParseRetain(v[0])
			if err != nil {
				return Config{}, fmt.Errorf("s3: retain=%q: %w", v[0], err)
			}
			c.Retain = d
		default:
			return Config{}, fmt.Errorf("s3: unknown URL parameter %q (known: endpoint, region, use_path_style, sse, kms_key_id, object_lock, retain)", k)
		}
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c Config) validate() error {
	if c.Endpoint != "" {
		e, err := url.Parse(c.Endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return errors.New("s3: endpoint must be an http:// or https:// URL")
		}
		if e.User != nil {
			return errors.New("s3: endpoint must not contain credentials")
		}
	}
	switch types.ServerSideEncryption(c.SSE) {
	case "", types.ServerSideEncryptionAes256, types.ServerSideEncryptionAwsKms, types.ServerSideEncryptionAwsKmsDsse:
	default:
		return fmt.Errorf("s3: sse=%q: want AES256, aws:kms or aws:kms:dsse", c.SSE)
	}
	if c.SSEKMSKeyID != "" && !strings.HasPrefix(c.SSE, "aws:kms") {
		return errors.New("s3: kms_key_id needs sse=aws:kms")
	}
	switch types.ObjectLockMode(c.ObjectLock) {
	case "":
		if c.Retain != 0 {
			return errors.New("s3: retain needs object_lock=compliance or governance")
		}
	case types.ObjectLockModeCompliance, types.ObjectLockModeGovernance:
		if c.Retain <= 0 {
			return errors.New("s3: object_lock needs retain=DURATION (e.g. retain=30d)")
		}
	default:
		return fmt.Errorf("s3: object_lock=%q: want compliance or governance", strings.ToLower(c.ObjectLock))
	}
	return nil
}

// Location returns the URL without credentials.
func (c Config) Location() string {
	q := url.Values{}
	if c.Endpoint != "" {
		q.Set("endpoint", c.Endpoint)
	}
	if c.Region != "" {
		q.Set("region", c.Region)
	}
	if c.UsePathStyle {
		q.Set("use_path_style", "true")
	}
	if c.SSE != "" {
		q.Set("sse", c.SSE)
	}
	if c.SSEKMSKeyID != "" {
		q.Set("sse_kms_key_id", c.SSEKMSKeyID)
	}
	if c.ObjectLock != "" {
		q.Set("object_lock", strings.ToLower(c.ObjectLock))
		q.Set("retain", storage.FormatRetain(c.Retain))
	}
	u := url.URL{Scheme: "s3", Host: c.Bucket, Path: "/" + c.Prefix, RawQuery: q.Encode()}
	if c.Prefix == "" {
		u.Path = ""
	}
	return u.String()
}

// Backend stores objects in one bucket under a prefix.
type Backend struct {
	cfg      Config
	client   *s3.Client
	uploader *transfermanager.Client
	idle     interface{ CloseIdleConnections() } // nil unless the HTTP client supports it
}

// Open parses rawURL and returns a backend for it.
func Open(ctx context.Context, rawURL string) (*Backend, error) {
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", storage.ErrInvalidLocation, err)
	}
	return New(ctx, c)
}

// New returns a backend for c. It loads the SDK configuration (credentials
// are resolved lazily, on the first request) but sends no request.
func New(ctx context.Context, c Config) (*Backend, error) {
	if c.Bucket == "" {
		return nil, errors.New("s3: no bucket")
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if err := storage.ValidatePrefix(c.Prefix); err != nil {
		return nil, fmt.Errorf("s3: prefix: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	var opts []func(*config.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(c.Credentials))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	// Freeze the SDK's client (it honours AWS_CA_BUNDLE) into an
	// *http.Client of our own, so that Close can drop idle connections.
	if bc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient); ok {
		awsCfg.HTTPClient = bc.Freeze()
	}
	idle, _ := awsCfg.HTTPClient.(interface{ CloseIdleConnections() })
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.UsePathStyle
		// The SDK would log to stderr for every GET without a checksum.
		o.DisableLogOutputChecksumValidationSkipped = true
		if c.RetryMaxAttempts > 0 {
			o.RetryMaxAttempts = c.RetryMaxAttempts
		}
	})
	up := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = DefaultPartSize
		if c.PartSize > 0 {
			o.PartSizeBytes = c.PartSize
		}
		o.MultipartUploadThreshold = o.PartSizeBytes
		o.Concurrency = DefaultUploadConcurrency
		// A failed multipart upload is aborted on a fresh context, even
		// when ctx has ended, so its parts stop costing storage.
		o.FailTimeout = abortTimeout
	})
	return &Backend{cfg: c, client: client, uploader: up, idle: idle}, nil
}

func (b *Backend) key(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	return b.cfg.Prefix + key, nil
}

func (b *Backend) sse() (types.ServerSideEncryption, *string) {
	var id *string
	if b.cfg.SSEKMSKeyID != "" {
		id = aws.String(b.cfg.SSEKMSKeyID)
	}
	return types.ServerSideEncryption(b.cfg.SSE), id
}

// lock returns the Object Lock mode and retain-until date for an object
// written now ("" and nil without Object Lock).
func (b *Backend) lock() (types.ObjectLockMode, *time.Time) {
	if b.cfg.ObjectLock == "" {
		return "", nil
	}
	until := time.Now().Add(b.cfg.Retain).UTC()
	return types.ObjectLockMode(b.cfg.ObjectLock), &until
}

// Locks reports whether objects are written under Object Lock.
func (b *Backend) Locks() bool { return b.cfg.ObjectLock != "" }

// LockedUntil returns the time until which the object's Object Lock
// retention forbids deleting it (zero when it has none or it has passed).
func (b *Backend) LockedUntil(ctx context.Context, key string) (time.Time, error) {
	if b.cfg.ObjectLock == "" {
		return time.Time{}, nil
	}
	k, err := b.key(key)
	if err != nil {
		return time.Time{}, err
	}
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	if err != nil {
		if errors.Is(b.wrap("stat", key, err), storage.ErrNotExist) {
			return time.Time{}, nil
		}
		return time.Time{}, b.wrap("stat", key, err)
	}
	if out.ObjectLockRetainUntilDate == nil || !out.ObjectLockRetainUntilDate.After(time.Now()) {
		return time.Time{}, nil
	}
	return *out.ObjectLockRetainUntilDate, nil
}

// countingReader counts bytes and checks ctx between reads.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Put streams r into the object with a multipart upload.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader) (storage.ObjectInfo, error) {
	k, err := b.key(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	cr := &countingReader{ctx: ctx, r: r}
	in := &transfermanager.UploadObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k), Body: cr}
	sse, kms := b.sse()
	in.ServerSideEncryption, in.SSEKMSKeyID = tmtypes.ServerSideEncryption(sse), kms
	if mode, until := b.lock(); mode != "" {
		in.ObjectLockMode, in.ObjectLockRetainUntilDate = tmtypes.ObjectLockMode(mode), until
	}
	out, err := b.uploader.UploadObject(ctx, in)
	if err != nil {
		return storage.ObjectInfo{}, b.wrap("put", key, err)
	}
	return storage.ObjectInfo{Key: key, Size: cr.n, ModTime: time.Now(), ETag: aws.ToString(out.ETag)}, nil
}

// PutIf writes data with If-None-Match: * (IfAbsent) or If-Match.
func (b *Backend) PutIf(ctx context.Context, key string, data []byte, cond storage.Condition) (storage.ObjectInfo, error) {
	k, err := b.key(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(b.cfg.Bucket),
		Key:           aws.String(k),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	in.ServerSideEncryption, in.SSEKMSKeyId = b.sse()
	if cond.IfAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	// No Object Lock here: conditional writes hold state updated in place
	// (leases, the repository marker), not backups; a locked version would
	// refuse the next update or be left behind at every one.
	if cond.IfMatch != "" {
		in.IfMatch = aws.String(cond.IfMatch)
	}
	out, err := b.client.PutObject(ctx, in)
	if err != nil {
		return storage.ObjectInfo{}, b.wrap("put", key, err)
	}
	return storage.ObjectInfo{Key: key, Size: int64(len(data)), ModTime: time.Now(), ETag: aws.ToString(out.ETag)}, nil
}

// Get returns a reader over [off, off+length) of the object.
func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	k, err := b.key(key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, off)
	}
	if length == 0 {
		// No Range header can ask for zero bytes; check existence instead.
		if _, err := b.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		if status(err) == 416 { // off at or beyond the end of an existing object
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, b.wrap("get", key, err)
	}
	return &body{rc: out.Body, b: b, key: key}, nil
}

// body classifies the read errors of a GetObject body: the SDK's checksum
// validation failing ("checksum did not match", checked at the end of a
// full-object GET when the object has a stored checksum) is damage at rest
// (a *storage.CorruptError); a cut connection is transient.
type body struct {
	rc  io.ReadCloser
	b   *Backend
	key string
}

func (r *body) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		if strings.Contains(err.Error(), "checksum did not match") {
			return n, &storage.CorruptError{Key: r.key, What: err.Error()}
		}
		return n, r.b.wrap("read", r.key, err)
	}
	return n, err
}

func (r *body) Close() error { return r.rc.Close() }

// Stat describes the object with HeadObject.
func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	k, err := b.key(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	if err != nil {
		return storage.ObjectInfo{}, b.wrap("stat", key, err)
	}
	return storage.ObjectInfo{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ModTime: aws.ToTime(out.LastModified),
		ETag:    aws.ToString(out.ETag),
	}, nil
}

// List pages through ListObjectsV2; keys are relative to the prefix.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return err
	}
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(b.cfg.Bucket),
		Prefix: aws.String(b.cfg.Prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return b.wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), b.cfg.Prefix)
			if storage.ValidateKey(key) != nil {
				continue // "dir/" markers and other names redback never writes
			}
			err := fn(storage.ObjectInfo{
				Key:     key,
				Size:    aws.ToInt64(o.Size),
				ModTime: aws.ToTime(o.LastModified),
				ETag:    aws.ToString(o.ETag),
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes the object; S3 reports success for a missing key.
func (b *Backend) Delete(ctx context.Context, key string) error {
	k, err := b.key(key)
	if err != nil {
		return err
	}
	_, err = b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	if err != nil && !errors.Is(b.wrap("delete", key, err), storage.ErrNotExist) {
		return b.wrap("delete", key, err)
	}
	return nil
}

// ListUploads lists the incomplete multipart uploads of keys starting
// with prefix (a writer killed mid-Put leaves one; its parts cost storage
// until it is aborted). Keys are relative to the backend's prefix.
func (b *Backend) ListUploads(ctx context.Context, prefix string, fn func(storage.Upload) error) error {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return err
	}
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(b.cfg.Bucket), Prefix: aws.String(b.cfg.Prefix + prefix)}
	for {
		out, err := b.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return b.wrap("list uploads", prefix, err)
		}
		for _, u := range out.Uploads {
			key, ok := strings.CutPrefix(aws.ToString(u.Key), b.cfg.Prefix)
			if !ok || storage.ValidateKey(key) != nil {
				continue
			}
			if err := fn(storage.Upload{Key: key, ID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)}); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextKeyMarker == nil && out.NextUploadIdMarker == nil {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// AbortUpload aborts an incomplete multipart upload, discarding its parts.
// An upload that is already gone is not an error.
func (b *Backend) AbortUpload(ctx context.Context, u storage.Upload) error {
	k, err := b.key(u.Key)
	if err != nil {
		return err
	}
	_, err = b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k), UploadId: aws.String(u.ID),
	})
	if err != nil && code(err) != "NoSuchUpload" {
		return b.wrap("abort upload", u.Key, err)
	}
	return nil
}

// Properties reports 8 connections.
func (b *Backend) Properties() storage.Properties { return storage.Properties{Connections: 8} }

// Location returns the s3:// URL without credentials.
func (b *Backend) Location() string { return b.cfg.Location() }

// Close releases idle connections.
func (b *Backend) Close() error {
	if b.idle != nil {
		b.idle.CloseIdleConnections()
	}
	return nil
}

func status(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// wrap adds context to an SDK error and classifies it.
func (b *Backend) wrap(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	st, c := status(err), code(err)
	switch {
	case c == "NoSuchBucket":
		return fmt.Errorf("%s %s: bucket %q does not exist: %w (%w)", op, key, b.cfg.Bucket, storage.ErrNotExist, err)
	case c == "NoSuchKey" || st == 404 && (c == "NotFound" || c == ""):
		// HEAD responses have no body, so only "NotFound" (or nothing).
		return fmt.Errorf("%s %s: %w", op, key, storage.ErrNotExist)
	case st == 412 || c == "PreconditionFailed":
		return fmt.Errorf("%s %s: %w (%w)", op, key, storage.ErrPrecondition, err)
	case st == 403 || c == "InvalidAccessKeyId" || c == "SignatureDoesNotMatch" || c == "AccessDenied" ||
		c == "XAdminUserNotFound": // versitygw's 404 for an unknown access key
		return fmt.Errorf("%s %s: access denied by %s (check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and the bucket policy): %w", op, key, b.Location(), err)
	case st == 501 || c == "NotImplemented":
		return fmt.Errorf("%s %s: not supported by this S3 server: %w", op, key, err)
	case isTransient(st, c, err):
		return storage.Transient(fmt.Errorf("%s %s: %w", op, key, err))
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

func isTransient(st int, c string, err error) bool {
	switch c {
	case "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeoutException",
		"InternalError", "ServiceUnavailable", "ConditionalRequestConflict", "OperationAborted":
		return true
	}
	if st == 429 || st == 409 && c == "" || st >= 500 {
		return true
	}
	var se *smithyhttp.RequestSendError
	if errors.As(err, &se) {
		return true // no response: connection refused, reset, DNS, TLS handshake
	}
	return storage.IsConnectionError(err)
}
