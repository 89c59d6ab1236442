// Package storage defines the Backend interface every repository store
// implements (local folder, S3, GCS, Azure Blob, in-memory), its error sentinels, and the
// decorators (retry) that wrap any backend.
//
// Keys are slash-separated relative paths ("gen/0001/snap/...") with no
// leading slash, no "." or ".." elements and no empty elements.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// ErrNotExist is returned (possibly wrapped) by Get, Stat and conditional
// writes when the object is missing. Every backend maps its own not-found
// condition to it.
var ErrNotExist = errors.New("object does not exist")

// ErrCorrupt is wrapped by a *CorruptError: the store itself found the
// stored bytes damaged (a checksum it keeps did not match what it served).
var ErrCorrupt = errors.New("stored bytes are damaged")

// CorruptError reports damage a backend detected while serving an object
// (the S3 SDK's "checksum did not match"). It is a verification failure,
// never transient.
type CorruptError struct {
	Key  string
	What string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("object %s: %s: %s", e.Key, ErrCorrupt, e.What)
}
func (e *CorruptError) Unwrap() error            { return ErrCorrupt }
func (e *CorruptError) VerificationFailed() bool { return true }

// ErrInvalidLocation is wrapped by the error of opening a repository
// location that cannot name one: an unsupported scheme, a malformed URL,
// an unknown URL parameter. It is the caller's mistake, not a failure.
var ErrInvalidLocation = errors.New("invalid repository location")

// ErrPrecondition is returned by PutIf when its condition does not hold.
var ErrPrecondition = errors.New("precondition failed")

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
	ETag    string // opaque version tag usable with PutIf; may be empty for List results
}

// Properties tells callers how to use a backend well.
type Properties struct {
	Connections int // how many concurrent operations the backend handles well
}

// Condition constrains a PutIf.
type Condition struct {
	// IfAbsent: the write succeeds only when no object has the key.
	IfAbsent bool
	// IfMatch: the write succeeds only when the current object's ETag equals it.
	IfMatch string
}

// Backend is a flat object store.
//
// Contracts shared by every backend (checked by storagetest.Run):
//   - Put is atomic: a concurrent or later reader sees either the previous
//     object or the complete new one, never a part. On error nothing new is
//     visible. Put reads r to EOF exactly once; a retry decorator replays r
//     only when it is an io.Seeker.
//   - Get of a missing key returns an error wrapping ErrNotExist. A Get with
//     off beyond the size returns an empty reader or an error, never panics.
//     length < 0 means "to the end".
//   - List calls fn for every object whose key starts with prefix, in
//     ascending byte order of the key. An error from fn stops the listing
//     and is returned.
//   - Delete of a missing key is not an error.
//   - Errors are permanent unless IsTransient reports true for them.
type Backend interface {
	Put(ctx context.Context, key string, r io.Reader) (ObjectInfo, error)
	PutIf(ctx context.Context, key string, data []byte, cond Condition) (ObjectInfo, error)
	Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	Delete(ctx context.Context, key string) error
	Properties() Properties
	// Location describes the store for people (URL without secrets).
	Location() string
	Close() error
}

// TransientError marks an error as worth retrying.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// IsTransient reports whether err (or an error it wraps) is a TransientError.
func IsTransient(err error) bool {
	var t *TransientError
	return errors.As(err, &t)
}

// ErrInvalidKey is returned (wrapped, with the offending key) by every
// backend for a key or prefix that breaks the key rules in the package
// documentation.
var ErrInvalidKey = errors.New("invalid key")

// ValidateKey reports whether key is a valid object key: non-empty,
// slash-separated, no leading or trailing slash, no empty, "." or ".."
// elements, no NUL or backslash. The error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w %q: empty", ErrInvalidKey, key)
	}
	if strings.HasSuffix(key, "/") {
		return fmt.Errorf("%w %q: trailing slash", ErrInvalidKey, key)
	}
	return ValidatePrefix(key)
}

// ValidatePrefix reports whether prefix is a valid List prefix: empty, or a
// string that follows the key rules except that it may end with a slash
// (and its last element may be any prefix of an element name). The error
// wraps ErrInvalidKey.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("%w %q: must be relative (no leading slash)", ErrInvalidKey, prefix)
	}
	if strings.ContainsAny(prefix, "\x00\\") {
		return fmt.Errorf("%w %q: contains NUL or backslash", ErrInvalidKey, prefix)
	}
	if !utf8.ValidString(prefix) {
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidKey, prefix)
	}
	elems := strings.Split(prefix, "/")
	for i, e := range elems {
		last := i == len(elems)-1
		switch {
		case e == "" && !last:
			return fmt.Errorf("%w %q: empty path element", ErrInvalidKey, prefix)
		case e == "." || e == "..":
			return fmt.Errorf("%w %q: %q path element", ErrInvalidKey, prefix, e)
		}
	}
	return nil
}

// IsConnectionError reports the network failures every backend treats as
// transient: timeouts, refused, reset or broken connections and responses
// cut short.
func IsConnectionError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// Transient wraps err in a TransientError; it returns nil for nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &TransientError{Err: err}
}

// Locker is implemented by backends that can write objects under a
// retention lock (S3 Object Lock). Locks reports whether this one does;
// LockedUntil returns the time until which key may not be deleted (zero
// when it may be deleted now).
type Locker interface {
	Locks() bool
	LockedUntil(ctx context.Context, key string) (time.Time, error)
}

// decorated returns the first of b and the backends it decorates
// (through Unwrap) that is a T for which use is true.
func decorated[T any](b Backend, use func(T) bool) (T, bool) {
	for b != nil {
		if t, ok := b.(T); ok && use(t) {
			return t, true
		}
		u, ok := b.(interface{ Unwrap() Backend })
		if !ok {
			break
		}
		b = u.Unwrap()
	}
	var zero T
	return zero, false
}

// locker finds the Locker among b and the backends it decorates.
func locker(b Backend) Locker {
	l, _ := decorated(b, Locker.Locks)
	return l
}

// Locks reports whether b (or the backend it decorates) writes objects
// under a retention lock.
func Locks(b Backend) bool { return locker(b) != nil }

// LockedUntil asks b, or the backend it decorates, when key may be deleted;
// zero for backends without retention locks.
func LockedUntil(ctx context.Context, b Backend, key string) (time.Time, error) {
	if l := locker(b); l != nil {
		return l.LockedUntil(ctx, key)
	}
	return time.Time{}, nil
}

// ParseRetain parses a retention period: a Go duration ("720h") or a
// whole number of days ("30d").
func ParseRetain(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, errors.New("want a positive number of days (30d) or a duration (720h)")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, errors.New("want a positive number of days (30d) or a duration (720h)")
	}
	return v, nil
}

// FormatRetain is the inverse of ParseRetain: whole days as "Nd".
func FormatRetain(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}

// Upload is a multipart upload that was started and neither completed nor
// aborted: a writer killed mid-Put leaves one behind. Its parts are never
// visible as an object, but the store keeps (and bills) them until the
// upload is aborted.
type Upload struct {
	Key       string    // the object key the upload would have written
	ID        string    // the store's upload id
	Initiated time.Time // when the upload was started
}

// Uploader is implemented by backends with multipart uploads (S3): it
// lists the incomplete uploads of keys starting with prefix and aborts one.
type Uploader interface {
	ListUploads(ctx context.Context, prefix string, fn func(Upload) error) error
	AbortUpload(ctx context.Context, u Upload) error
}

// uploader finds the Uploader among b and the backends it decorates.
func uploader(b Backend) Uploader {
	u, _ := decorated(b, func(Uploader) bool { return true })
	return u
}

// ListUploads calls fn for every incomplete multipart upload of b (or the
// backend it decorates) whose key starts with prefix; backends without
// multipart uploads have none.
func ListUploads(ctx context.Context, b Backend, prefix string, fn func(Upload) error) error {
	if u := uploader(b); u != nil {
		return u.ListUploads(ctx, prefix, fn)
	}
	return nil
}

// TempFiler is implemented by backends whose writes stage in a temporary
// file before they publish it (a folder repository): a writer killed
// mid-write leaves the file behind, never listed as an object. ListTemps
// reports those under prefix (Key is the temporary file's own name in
// the key space, ModTime its last write); RemoveTemp removes one.
type TempFiler interface {
	ListTemps(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	RemoveTemp(ctx context.Context, key string) error
}

// ListTemps calls fn for every leftover temporary file of b (or the
// backend it decorates) under prefix; backends without them have none.
func ListTemps(ctx context.Context, b Backend, prefix string, fn func(ObjectInfo) error) error {
	if t, ok := decorated(b, func(TempFiler) bool { return true }); ok {
		return t.ListTemps(ctx, prefix, fn)
	}
	return nil
}

// RemoveTemp removes a temporary file ListTemps reported on b.
func RemoveTemp(ctx context.Context, b Backend, key string) error {
	if t, ok := decorated(b, func(TempFiler) bool { return true }); ok {
		return t.RemoveTemp(ctx, key)
	}
	return fmt.Errorf("remove temporary file %s: %s has none", key, b.Location())
}

// AbortUpload aborts an incomplete multipart upload that ListUploads
// reported on b, discarding its parts.
func AbortUpload(ctx context.Context, b Backend, u Upload) error {
	if up := uploader(b); up != nil {
		return up.AbortUpload(ctx, u)
	}
	return fmt.Errorf("abort upload %s: %s has no multipart uploads", u.Key, b.Location())
}
