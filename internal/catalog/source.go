package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	"redback/internal/storage"
)

// RepoFormat is the repository format this code writes (the "format" of
// redback.json): 2 since a repository holds many sources.
const RepoFormat = 2

// Key prefixes of format 2 (see docs/format.md).
const (
	SourceRecordPrefix = "sources/" // sources/<name>.json: one record per source
	SourceRootPrefix   = "src/"     // src/<name>/...: the objects of source <name>
)

// Marker is the content of redback.json.
type Marker struct {
	Format  int       `json:"format"`
	Tool    string    `json:"tool"`
	Created time.Time `json:"created"`
	// RootSource names the source whose objects lie at the top level of
	// the repository: the history a format-1 repository held before it
	// was upgraded. Empty when there is none.
	RootSource string    `json:"root_source,omitempty"`
	Upgraded   time.Time `json:"upgraded,omitzero"`
}

// SourceRecord is the content of sources/<name>.json, written once by the
// first writer of the source.
type SourceRecord struct {
	Format  int       `json:"format"`
	Name    string    `json:"name"`
	Address string    `json:"address"` // masked, never a secret
	Created time.Time `json:"created"`
}

// SourceRef locates one source of a repository.
type SourceRef struct {
	Name string
	// Root is the key prefix of the source's objects: "" for the top level
	// (a format-1 history), else "src/<name>/".
	Root string
}

// NamedSource is where source name's objects go in a format-2 repository
// (unless it is the repository's root source).
func NamedSource(name string) SourceRef {
	return SourceRef{Name: name, Root: SourceRootPrefix + name + "/"}
}

// Backend is the view of b that holds only this source's objects.
func (r SourceRef) Backend(b storage.Backend) storage.Backend { return storage.Scope(b, r.Root) }

// Holds reports whether key (relative to the repository) belongs to source
// r, or is one of the repository-level objects a copy of r needs (the
// marker and r's source record): what `redback copy --name` and the
// agent's copy_to copy.
func (r SourceRef) Holds(key string) bool {
	switch {
	case key == MarkerKey || key == SourceRecordKey(r.Name):
		return true
	case r.Root != "":
		return strings.HasPrefix(key, r.Root)
	}
	return !strings.HasPrefix(key, SourceRootPrefix) && !strings.HasPrefix(key, SourceRecordPrefix)
}

// ErrNoRepository is returned when a location holds no redback repository.
var ErrNoRepository = errors.New("no redback repository")

// NoRepositoryError says which location holds no repository.
type NoRepositoryError struct {
	Location string
	Err      error // what the store said, when it said more than "missing"
}

func (e *NoRepositoryError) Error() string {
	msg := "no redback repository at " + e.Location
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + " (check the URL; snapshot, ship and agent create one on their first write)"
}

func (e *NoRepositoryError) Unwrap() error { return ErrNoRepository }

// ValidSourceName reports whether name can name a source: 1 to 64 ASCII
// letters, digits, '.', '_' or '-', starting with a letter or digit. Such
// a name is safe as one element of an object key on every backend.
func ValidSourceName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("source name %q: want 1 to 64 characters", name)
	}
	for i, c := range name {
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return fmt.Errorf("source name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
	}
	return nil
}

// NameFromAddress derives a source name from a server address: host and
// port ("redis://10.0.0.5:6379" -> "10.0.0.5-6379"), a socket's file name
// ("unix:///run/redis.sock" -> "unix-redis.sock") or an AOF directory
// ("aof:/var/lib/redis/appendonlydir" -> "aof-redis-appendonlydir").
func NameFromAddress(addr string) string {
	var raw string
	switch {
	case strings.HasPrefix(addr, "aof:"):
		dir := path.Clean(strings.TrimPrefix(addr, "aof:"))
		raw = "aof-" + path.Base(path.Dir(dir)) + "-" + path.Base(dir)
	default:
		u, err := url.Parse(addr)
		switch {
		case err != nil:
			raw = addr
		case u.Scheme == "unix":
			raw = "unix-" + path.Base(u.Path)
		default:
			host, port, err := net.SplitHostPort(u.Host)
			if err != nil {
				host, port = u.Host, "6379"
			}
			if host != "" {
				raw = host + "-" + port
			}
		}
	}
	var b strings.Builder
	for _, c := range raw {
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '_' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-._")
	if len(name) > 64 {
		name = strings.Trim(name[:64], "-._")
	}
	if ValidSourceName(name) != nil {
		return "default"
	}
	return name
}

// SourceRecordKey is the key of source name's record.
func SourceRecordKey(name string) string { return SourceRecordPrefix + name + ".json" }

// readMarker returns the marker and its ETag; storage.ErrNotExist when
// there is none.
func readMarker(ctx context.Context, b storage.Backend) (*Marker, string, error) {
	info, err := b.Stat(ctx, MarkerKey)
	if err != nil {
		return nil, "", err
	}
	var m Marker
	if err := GetJSON(ctx, b, MarkerKey, &m); err != nil {
		return nil, "", err
	}
	if m.Format > RepoFormat {
		return nil, "", &ManifestError{Key: MarkerKey, Err: fmt.Errorf("repository format %d is newer than this redback understands (%d): upgrade redback", m.Format, RepoFormat)}
	}
	return &m, info.ETag, nil
}

// hasTopLevelHistory reports whether b holds format-1 objects (snapshot or
// generation manifests) at the top level.
func hasTopLevelHistory(ctx context.Context, b storage.Backend) (bool, error) {
	stop := errors.New("found")
	for _, p := range []string{SnapshotPrefix, GenerationPrefix} {
		err := b.List(ctx, p, func(storage.ObjectInfo) error { return stop })
		if errors.Is(err, stop) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

// topLevelAddress is the source address recorded by the newest top-level
// snapshot (or else generation) manifest: the server a format-1 history
// came from. "" when none can be read.
func topLevelAddress(ctx context.Context, b storage.Backend) string {
	snaps, _, err := ListSnapshots(ctx, b)
	if err == nil && len(snaps) > 0 {
		return snaps[0].Source.Address
	}
	gens, err := ListGenerations(ctx, b)
	if err == nil && len(gens) > 0 {
		return gens[len(gens)-1].Source.Address
	}
	return ""
}

// Repository is what OpenRepository found at a location.
type Repository struct {
	Format  int
	Sources []SourceRef // sorted by name
}

// Names are the sources' names, sorted.
func (r *Repository) Names() []string {
	out := make([]string, len(r.Sources))
	for i, s := range r.Sources {
		out[i] = s.Name
	}
	return out
}

// Source returns the source called name.
func (r *Repository) Source(name string) (SourceRef, bool) {
	for _, s := range r.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return SourceRef{}, false
}

// OpenRepository reads what b holds: its format and its sources. A
// location without a marker and without any redback object (a missing
// directory, an empty prefix, a missing bucket) gives a
// *NoRepositoryError: only writers create repositories (InitSource). A
// format-1 repository is one source at the top level, named after the
// server its newest manifest came from.
func OpenRepository(ctx context.Context, b storage.Backend) (*Repository, error) {
	m, _, err := readMarker(ctx, b)
	switch {
	case errors.Is(err, storage.ErrNotExist):
		found, lerr := hasTopLevelHistory(ctx, b)
		if errors.Is(lerr, storage.ErrNotExist) {
			return nil, &NoRepositoryError{Location: b.Location(), Err: lerr}
		}
		if lerr != nil {
			return nil, fmt.Errorf("read repository %s: %w", b.Location(), lerr)
		}
		if !found {
			return nil, &NoRepositoryError{Location: b.Location()}
		}
		m = &Marker{Format: 1}
	case err != nil:
		return nil, fmt.Errorf("read repository %s: %w", b.Location(), err)
	}
	r := &Repository{Format: m.Format}
	if m.Format < 2 {
		found, err := hasTopLevelHistory(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("read repository %s: %w", b.Location(), err)
		}
		if found {
			r.Sources = []SourceRef{{Name: NameFromAddress(topLevelAddress(ctx, b))}}
		}
		return r, nil
	}
	if m.RootSource != "" {
		r.Sources = append(r.Sources, SourceRef{Name: m.RootSource})
	}
	err = b.List(ctx, SourceRecordPrefix, func(oi storage.ObjectInfo) error {
		name, ok := strings.CutSuffix(strings.TrimPrefix(oi.Key, SourceRecordPrefix), ".json")
		if !ok || strings.Contains(name, "/") || ValidSourceName(name) != nil || name == m.RootSource {
			return nil
		}
		r.Sources = append(r.Sources, NamedSource(name))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sources of %s: %w", b.Location(), err)
	}
	sort.Slice(r.Sources, func(i, j int) bool { return r.Sources[i].Name < r.Sources[j].Name })
	return r, nil
}

// InitSource prepares b for writing source name (whose server is at
// address, masked): it creates the repository (marker, format 2) when
// missing, upgrades a format-1 repository in place (one conditional write
// of the marker, so it happens once however many writers race), registers
// the source, and returns where its objects go.
//
// The upgrade keeps the format-1 history where it is, as the source
// "root_source" of the marker: named name when it came from the same
// server (host and port) as address, else after the server it came from.
func InitSource(ctx context.Context, b storage.Backend, name, address string) (SourceRef, error) {
	if err := ValidSourceName(name); err != nil {
		return SourceRef{}, err
	}
	for attempt := 0; ; attempt++ {
		m, etag, err := readMarker(ctx, b)
		var cond storage.Condition
		switch {
		case err == nil && m.Format >= 2:
			return registerSource(ctx, b, m, name, address)
		case err == nil:
			cond = storage.Condition{IfMatch: etag}
		case errors.Is(err, storage.ErrNotExist):
			cond = storage.Condition{IfAbsent: true}
			m = &Marker{}
		default:
			return SourceRef{}, fmt.Errorf("read repository marker: %w", err)
		}
		if attempt >= 3 {
			return SourceRef{}, fmt.Errorf("create repository marker on %s: contended", b.Location())
		}
		now := time.Now().UTC()
		next := Marker{Format: RepoFormat, Tool: "redback", Created: m.Created}
		if next.Created.IsZero() {
			next.Created = now
		}
		found, err := hasTopLevelHistory(ctx, b)
		if err != nil && !errors.Is(err, storage.ErrNotExist) {
			return SourceRef{}, fmt.Errorf("read repository %s: %w", b.Location(), err)
		}
		if found {
			old := topLevelAddress(ctx, b)
			next.RootSource = NameFromAddress(old)
			if sameServer(old, address) {
				next.RootSource = name
			}
			next.Upgraded = now
		}
		data, _ := json.Marshal(next)
		if _, err := b.PutIf(ctx, MarkerKey, data, cond); err != nil {
			if errors.Is(err, storage.ErrPrecondition) || errors.Is(err, storage.ErrNotExist) {
				continue // another writer created or upgraded it first: read again
			}
			return SourceRef{}, fmt.Errorf("write repository marker: %w", err)
		}
	}
}

func registerSource(ctx context.Context, b storage.Backend, m *Marker, name, address string) (SourceRef, error) {
	if name == m.RootSource {
		return SourceRef{Name: name}, nil
	}
	ref := NamedSource(name)
	key := SourceRecordKey(name)
	if _, err := b.Stat(ctx, key); err == nil {
		return ref, nil
	} else if !errors.Is(err, storage.ErrNotExist) {
		return SourceRef{}, fmt.Errorf("read %s: %w", key, err)
	}
	data, _ := json.Marshal(SourceRecord{Format: RepoFormat, Name: name, Address: address, Created: time.Now().UTC()})
	if _, err := b.PutIf(ctx, key, data, storage.Condition{IfAbsent: true}); err != nil && !errors.Is(err, storage.ErrPrecondition) {
		return SourceRef{}, fmt.Errorf("register source %s: %w", name, err)
	}
	return ref, nil
}

// sameServer reports whether two addresses name the same host and port.
func sameServer(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	return NameFromAddress(a) == NameFromAddress(b)
}
