package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"redback/internal/catalog"
	"redback/internal/ops"
	"redback/internal/storage"
	"redback/internal/storage/backends"
)

// openRepo opens the repository at url (file:///path, a plain path,
// s3://bucket/prefix?...), wrapped with retries of transient errors.
func openRepo(ctx context.Context, e *env, url string) (storage.Backend, error) {
	if url == "" {
		return nil, usagef("--repo file:///var/lib/redback/cache-a", "--repo is required")
	}
	b, err := backends.Open(ctx, url)
	if errors.Is(err, storage.ErrInvalidLocation) {
		return nil, usagef("--repo file:///var/lib/redback/cache-a (or s3://bucket/prefix?region=R)", "--repo: %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	return b, nil
}

// addNameFlag adds --name, the source of the repository a command works on.
func addNameFlag(f *pflag.FlagSet, p *string, writer bool) {
	if writer {
		f.StringVar(p, "name", "", "source name in the repository (default: from the source's host and port, e.g. 10.0.0.5-6379)")
		return
	}
	f.StringVar(p, "name", "", "source in the repository (may be omitted when it holds one; see redback list)")
}

// sourceSet is what a reading command opened: the repository and the
// sources it works on (one with --name, else all).
type sourceSet struct {
	base    storage.Backend
	repo    *catalog.Repository
	sources []catalog.SourceRef
}

func (s *sourceSet) Close() error { return s.base.Close() }

// view is the objects of source r.
func (s *sourceSet) view(r catalog.SourceRef) storage.Backend { return r.Backend(s.base) }

// openSources opens an existing repository for reading (a missing one is
// an error: only writers create repositories) and selects the source
// called name, or every source when name is "". A repository without a
// source yet gives one empty source, so commands report it as empty.
func openSources(ctx context.Context, e *env, url, name, try string) (*sourceSet, error) {
	b, err := openRepo(ctx, e, url)
	if err != nil {
		return nil, err
	}
	repo, err := catalog.OpenRepository(ctx, b)
	if err != nil {
		b.Close()
		return nil, err
	}
	s := &sourceSet{base: b, repo: repo, sources: repo.Sources}
	if name != "" {
		r, ok := repo.Source(name)
		if !ok {
			b.Close()
			return nil, usagef(tryWithName(try, repo.Names()), "no source %q in %s (its sources: %s)", name, b.Location(), namesText(repo.Names()))
		}
		s.sources = []catalog.SourceRef{r}
	}
	if len(s.sources) == 0 {
		s.sources = []catalog.SourceRef{{}}
	}
	return s, nil
}

// openOneSource is openSources for commands that work on exactly one
// source (restore, log, drill, keep, prune): several sources and no
// --name is a usage error that lists them.
func openOneSource(ctx context.Context, e *env, url, name, try string) (*sourceSet, storage.Backend, error) {
	s, err := openSources(ctx, e, url, name, try)
	if err != nil {
		return nil, nil, err
	}
	if len(s.sources) > 1 {
		names := s.repo.Names()
		s.Close()
		return nil, nil, usagef(tryWithName(try, names), "%s holds %d sources (%s): choose one with --name", s.base.Location(), len(names), namesText(names))
	}
	return s, s.view(s.sources[0]), nil
}

// openSource is openOneSource for commands that need only the source's
// objects: the view it returns closes the repository on Close.
func openSource(ctx context.Context, e *env, url, name, try string) (storage.Backend, error) {
	set, view, err := openOneSource(ctx, e, url, name, try)
	if err != nil {
		return nil, err
	}
	return closingView{Backend: view, base: set.base}, nil
}

// closingView is a source's view that owns its repository's backend.
type closingView struct {
	storage.Backend
	base storage.Backend
}

func (v closingView) Close() error { return v.base.Close() }

func namesText(names []string) string {
	if len(names) == 0 {
		return "none yet"
	}
	return strings.Join(names, ", ")
}

// tryWithName adds --name with the first of names to the example try.
func tryWithName(try string, names []string) string {
	if len(names) == 0 || strings.Contains(try, "--name") {
		return try
	}
	return try + " --name " + names[0]
}

// openWriter prepares the repository at url for writing the source
// called name (default: derived from address, and said on stderr): it
// creates or upgrades the repository and registers the source. The
// returned view holds only that source's objects; close base when done.
func openWriter(ctx context.Context, e *env, url, name, address string) (base, view storage.Backend, src catalog.SourceRef, err error) {
	if name == "" {
		name = catalog.NameFromAddress(address)
		fmt.Fprintf(e.Err, "source name: %s (from %s; set another with --name)\n", name, address)
	} else if err := catalog.ValidSourceName(name); err != nil {
		return nil, nil, src, usagef("--name cache-a", "--name: %v", err)
	}
	base, err = openRepo(ctx, e, url)
	if err != nil {
		return nil, nil, src, err
	}
	src, err = catalog.InitSource(ctx, base, name, address)
	if err != nil {
		base.Close()
		return nil, nil, src, err
	}
	return base, src.Backend(base), src, nil
}

// leased runs fn under the source's writer lease (ops.Leased).
func leased(ctx context.Context, e *env, view storage.Backend, name string, fn func(context.Context, storage.Backend) error) error {
	return ops.Leased(ctx, e.log, view, name, fn)
}
