package backends

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"redback/internal/storage"
	"redback/internal/storage/azure"
	"redback/internal/storage/file"
	"redback/internal/storage/gcs"
	"redback/internal/storage/mem"
	"redback/internal/storage/retry"
	"redback/internal/storage/s3"
)

// OpenFunc opens the backend for a location URL of its scheme.
type OpenFunc func(ctx context.Context, rawURL string) (storage.Backend, error)

// Scheme is one kind of store: how to check its location URLs and how to
// open them.
type Scheme struct {
	// Check parses and validates a location of this scheme without
	// opening anything, reading credentials or sending a request. Its
	// errors never echo secrets the URL may hold by mistake.
	Check func(rawURL string) error
	// Open opens the backend for a location of this scheme.
	Open OpenFunc
}

// Registry maps URL schemes to backends.
type Registry struct {
	schemes map[string]Scheme
	// Retry configures the retry decorator around every opened backend.
	Retry retry.Options
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{schemes: map[string]Scheme{}} }

// Default returns a registry with the file, s3, gs, azblob and mem schemes
// and the default retry options.
func Default() *Registry {
	r := NewRegistry()
	r.Register("file", Scheme{
		Check: func(u string) error { _, err := file.ParseURL(u); return err },
		Open:  func(_ context.Context, u string) (storage.Backend, error) { return file.New(u) },
	})
	r.Register("s3", Scheme{
		Check: func(u string) error { _, err := s3.ParseURL(u); return err },
		Open:  func(ctx context.Context, u string) (storage.Backend, error) { return s3.Open(ctx, u) },
	})
	r.Register("gs", Scheme{
		Check: func(u string) error { _, err := gcs.ParseURL(u); return err },
		Open:  func(ctx context.Context, u string) (storage.Backend, error) { return gcs.Open(ctx, u) },
	})
	r.Register("azblob", Scheme{
		Check: func(u string) error { _, err := azure.ParseURL(u); return err },
		Open:  func(ctx context.Context, u string) (storage.Backend, error) { return azure.Open(ctx, u) },
	})
	r.Register("mem", Scheme{
		Check: func(string) error { return nil },
		Open:  func(context.Context, string) (storage.Backend, error) { return mem.New(), nil },
	})
	return r
}

// Register adds or replaces scheme (lower case, without "://").
func (r *Registry) Register(scheme string, s Scheme) { r.schemes[scheme] = s }

// Schemes returns the registered schemes, sorted.
func (r *Registry) Schemes() []string {
	var out []string
	for s := range r.schemes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// scheme returns the scheme of location and its entry. A location
// without "scheme://" is a local path: the "file" scheme. Errors never
// echo the location (it may hold credentials by mistake), only its scheme.
func (r *Registry) scheme(location string) (string, Scheme, error) {
	if location == "" {
		return "", Scheme{}, fmt.Errorf("%w: empty repository location (want a path, file:///abs/path, s3://bucket/prefix, gs://bucket/prefix or azblob://container/prefix)", storage.ErrInvalidLocation)
	}
	name := "file"
	if s, rest, ok := strings.Cut(location, ":"); ok && validScheme(s) && (strings.HasPrefix(rest, "//") || r.schemes[strings.ToLower(s)].Open != nil) {
		name = strings.ToLower(s)
	}
	sc, ok := r.schemes[name]
	if !ok {
		return "", Scheme{}, &UnsupportedError{Scheme: name, Supported: r.Schemes()}
	}
	return name, sc, nil
}

// UnsupportedError is a location whose scheme no backend handles.
type UnsupportedError struct {
	Scheme    string
	Supported []string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("unsupported repository scheme %q (supported: %s, or a plain path)", e.Scheme, strings.Join(e.Supported, ", "))
}

// Unwrap makes it a storage.ErrInvalidLocation (a usage error).
func (e *UnsupportedError) Unwrap() error { return storage.ErrInvalidLocation }

// invalidError is a location its scheme rejected: the scheme's error, and
// storage.ErrInvalidLocation.
type invalidError struct{ err error }

func (e *invalidError) Error() string   { return e.err.Error() }
func (e *invalidError) Unwrap() []error { return []error{e.err, storage.ErrInvalidLocation} }

// Check parses and validates location with its scheme's Check, without
// opening anything: what configuration validation uses.
func (r *Registry) Check(location string) error {
	name, sc, err := r.scheme(location)
	if err != nil {
		return err
	}
	if sc.Check == nil {
		return nil
	}
	if err := sc.Check(location); err != nil {
		return &invalidError{fmt.Errorf("%s repository: %w", name, err)}
	}
	return nil
}

// Open opens location. A location without "scheme://" is a local path
// and opens with the "file" scheme. The backend is wrapped in
// retry.New(b, r.Retry). Errors never echo the location (it may hold
// credentials by mistake), only its scheme.
func (r *Registry) Open(ctx context.Context, location string) (storage.Backend, error) {
	if err := r.Check(location); err != nil {
		return nil, err
	}
	name, sc, err := r.scheme(location)
	if err != nil {
		return nil, err
	}
	b, err := sc.Open(ctx, location)
	if err != nil {
		return nil, fmt.Errorf("open %s repository: %w", name, err)
	}
	return retry.New(b, r.Retry), nil
}

// OpenObject opens the store holding the single object at location -- a
// local path, file:///abs/path/NAME, or SCHEME://bucket/prefix/NAME with
// the scheme's own parameters, like s3://bucket/exports/dump.rdb?region=R
// -- and returns it with the object's key (NAME). Errors never echo the
// location, only its scheme.
func (r *Registry) OpenObject(ctx context.Context, location string) (storage.Backend, string, error) {
	name, _, err := r.scheme(location)
	if err != nil {
		return nil, "", err
	}
	var dir, key string
	if name == "file" && !strings.HasPrefix(location, "file:") {
		dir, key = filepath.Split(location)
		if dir == "" {
			dir = "."
		}
	} else {
		u, err := url.Parse(location)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %s object: malformed URL", storage.ErrInvalidLocation, name)
		}
		var d string
		d, key = path.Split(u.Path)
		u.Path, u.RawPath = strings.TrimSuffix(d, "/"), ""
		if name == "file" && u.Path == "" {
			u.Path = "/"
		}
		dir = u.String()
	}
	if key == "" {
		return nil, "", fmt.Errorf("%w: %s object: the location names no object (want %s://.../NAME)", storage.ErrInvalidLocation, name, name)
	}
	b, err := r.Open(ctx, dir)
	if err != nil {
		return nil, "", err
	}
	return b, key, nil
}

// OpenObject opens the object at location with the Default registry.
func OpenObject(ctx context.Context, location string) (storage.Backend, string, error) {
	return Default().OpenObject(ctx, location)
}

// Check checks location with the Default registry.
func Check(location string) error { return Default().Check(location) }

// Open opens location with the Default registry.
func Open(ctx context.Context, location string) (storage.Backend, error) {
	return Default().Open(ctx, location)
}

// validScheme reports whether s is an RFC 3986 scheme of two or more
// characters (one letter would be a Windows drive).
func validScheme(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
