package backends

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"redback/internal/storage"
	"redback/internal/storage/file"
	"redback/internal/storage/mem"
	"redback/internal/storage/retry"
	"redback/internal/storage/s3"
)

// OpenFunc opens the backend for a location URL of its scheme.
type OpenFunc func(ctx context.Context, rawURL string) (storage.Backend, error)

// Registry maps URL schemes to backends.
type Registry struct {
	schemes map[string]OpenFunc
	// Retry configures the retry decorator around every opened backend.
	Retry retry.Options
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{schemes: map[string]OpenFunc{}} }

// Default returns a registry with the file, s3 and mem schemes and the
// default retry options.
func Default() *Registry {
	r := NewRegistry()
	r.Register("file", func(_ context.Context, u string) (storage.Backend, error) { return file.New(u) })
	r.Register("s3", func(ctx context.Context, u string) (storage.Backend, error) { return s3.Open(ctx, u) })
	r.Register("mem", func(context.Context, string) (storage.Backend, error) { return mem.New(), nil })
	return r
}

// Register adds or replaces scheme (lower case, without "://").
func (r *Registry) Register(scheme string, open OpenFunc) { r.schemes[scheme] = open }

// Schemes returns the registered schemes, sorted.
func (r *Registry) Schemes() []string {
	var out []string
	for s := range r.schemes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Open opens location. A location without "scheme://" is a local path
// and opens with the "file" scheme. The backend is wrapped in
// retry.New(b, r.Retry). Errors never echo the location (it may hold
// credentials by mistake), only its scheme.
func (r *Registry) Open(ctx context.Context, location string) (storage.Backend, error) {
	if location == "" {
		return nil, fmt.Errorf("%w: empty repository location (want a path, file:///abs/path or s3://bucket/prefix)", storage.ErrInvalidLocation)
	}
	scheme := "file"
	if s, rest, ok := strings.Cut(location, ":"); ok && validScheme(s) && (strings.HasPrefix(rest, "//") || r.schemes[strings.ToLower(s)] != nil) {
		scheme = strings.ToLower(s)
	}
	open := r.schemes[scheme]
	if open == nil {
		return nil, fmt.Errorf("%w: unsupported repository scheme %q (supported: %s, or a plain path)", storage.ErrInvalidLocation, scheme, strings.Join(r.Schemes(), ", "))
	}
	b, err := open(ctx, location)
	if err != nil {
		return nil, fmt.Errorf("open %s repository: %w", scheme, err)
	}
	return retry.New(b, r.Retry), nil
}

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
