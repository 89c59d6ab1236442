package catalog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"redback/internal/storage"
)

// FormatVersion is the version of the manifests this code writes. Readers
// refuse manifests with a newer version.
const FormatVersion = 1

// Key prefixes of a repository (see docs/format.md).
const (
	MarkerKey          = "redback.json"
	SnapshotPrefix     = "snapshots/"      // snapshots/<id>.json: snapshot manifests
	SnapshotDataPrefix = "data/snapshots/" // data/snapshots/<id>.rdb.zst[.age]: snapshot data
)

// ErrNoSnapshot is returned when a repository holds no (matching) snapshot.
var ErrNoSnapshot = errors.New("no snapshot in the repository")

// Source describes where a snapshot came from. Address never holds secrets.
type Source struct {
	Address string `json:"address"`
	// Node is the server actually read when Address names a
	// Sentinel-managed set (redis+sentinel://...).
	Node         string `json:"node,omitempty"`
	RunID        string `json:"run_id,omitempty"`
	RedisVersion string `json:"redis_version,omitempty"`
	// ValkeyVersion is set when the source is Valkey (its RDB's valkey-ver).
	ValkeyVersion string `json:"valkey_version,omitempty"`
	Role          string `json:"role,omitempty"`
	ReplID        string `json:"replid,omitempty"`
	Offset        int64  `json:"offset,omitempty"`
}

// Object describes a stored data object.
type Object struct {
	Key         string   `json:"key"`
	RawBytes    int64    `json:"raw_bytes"`
	StoredBytes int64    `json:"stored_bytes"`
	SHA256      string   `json:"sha256"`
	Compression string   `json:"compression"`
	Encryption  string   `json:"encryption,omitempty"`
	Recipients  []string `json:"recipients,omitempty"` // fingerprints, never keys
}

// DBCount is the key census of one logical db.
type DBCount struct {
	DB      int              `json:"db"`
	Keys    int64            `json:"keys"`
	Expires int64            `json:"expires"`
	Types   map[string]int64 `json:"types"`
}

// Census is what a snapshot holds.
type Census struct {
	Keys           int64            `json:"keys"`
	Expires        int64            `json:"expires"`
	AlreadyExpired int64            `json:"already_expired"`
	Types          map[string]int64 `json:"types"`
	DBs            []DBCount        `json:"dbs"`
	Functions      []string         `json:"functions,omitempty"`
	Modules        map[string]int64 `json:"modules,omitempty"`
}

// Snapshot is the manifest of one snapshot: the commit record written after
// its data object.
type Snapshot struct {
	Format     int       `json:"format"`
	ID         string    `json:"id"`
	StartTime  time.Time `json:"start_time"`
	EndTime    time.Time `json:"end_time"`
	Duration   float64   `json:"duration_seconds"`
	Method     string    `json:"method"` // sync, bgsave, rdb-file, ship, aof, log (MethodLog)
	Source     Source    `json:"source"`
	RDBVersion int       `json:"rdb_version"`
	RDBCTime   int64     `json:"rdb_ctime,omitempty"` // aux ctime (unix s)
	Checksum   string    `json:"rdb_checksum"`        // ok, not computed, absent
	Object     Object    `json:"object"`
	Census     Census    `json:"census"`
	Digest     string    `json:"digest"` // DEBUG DIGEST of the data (Redis 7.0 score format)
	Verified   bool      `json:"verified"`
	// Generation is set on the base of a log generation, and on a snapshot
	// synthesized from a generation's log (Method MethodLog; its
	// Source.Offset is the offset of the state it holds).
	Generation string `json:"generation,omitempty"`
	Keep       bool   `json:"keep,omitempty"`
}

// MethodLog is the Method of a snapshot synthesized from a generation's
// base (or an earlier synthesized snapshot) and its shipped log, without
// contacting the source (redback snapshot --from-log).
const MethodLog = "log"

// MethodRDBFile is the method of a snapshot imported from an RDB file or
// object (redback snapshot --from-rdb: a managed service's export).
const MethodRDBFile = "rdb-file"

// FromLog reports whether s was synthesized from the shipped log.
func (s *Snapshot) FromLog() bool { return s.Method == MethodLog && s.Generation != "" }

// NewSnapshotID returns a fixed-width id that sorts by time:
// 20261125T140312.123Z-a1b2c3.
func NewSnapshotID(t time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// SnapshotManifestKey is the manifest key of snapshot id.
func SnapshotManifestKey(id string) string { return SnapshotPrefix + id + ".json" }

// SnapshotDataKey is the data object key of snapshot id.
func SnapshotDataKey(id string, encrypted bool) string {
	k := SnapshotDataPrefix + id + ".rdb.zst"
	if encrypted {
		k += ".age"
	}
	return k
}

// ValidID reports whether id looks like a snapshot id (no path tricks).
func ValidID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return !strings.Contains(id, "..")
}

// PutJSON stores v as indented JSON under key (atomically, as every Put).
func PutJSON(ctx context.Context, b storage.Backend, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if _, err := b.Put(ctx, key, bytes.NewReader(append(data, '\n'))); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// maxManifestBytes bounds what a manifest read may allocate.
const maxManifestBytes = 16 << 20

// GetJSON reads key into v, refusing oversize or malformed documents.
func GetJSON(ctx context.Context, b storage.Backend, key string, v any) error {
	data, err := getManifest(ctx, b, key)
	if err != nil {
		return err
	}
	return decodeManifest(key, data, v)
}

// getManifest reads the document at key, refusing oversize ones.
func getManifest(ctx context.Context, b storage.Backend, key string) ([]byte, error) {
	rc, err := b.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(data) > maxManifestBytes {
		return nil, &ManifestError{Key: key, Err: fmt.Errorf("larger than %d bytes", maxManifestBytes)}
	}
	return data, nil
}

// decodeManifest decodes the document read from key into v.
func decodeManifest(key string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return &ManifestError{Key: key, Err: err}
	}
	return nil
}

// ManifestError reports a manifest that cannot be used.
type ManifestError struct {
	Key string
	Err error
}

func (e *ManifestError) Error() string            { return fmt.Sprintf("manifest %s: %v", e.Key, e.Err) }
func (e *ManifestError) Unwrap() error            { return e.Err }
func (e *ManifestError) VerificationFailed() bool { return true }

// ReadSnapshot loads and checks the manifest of snapshot id.
func ReadSnapshot(ctx context.Context, b storage.Backend, id string) (*Snapshot, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("snapshot id %q: %w", id, ErrNoSnapshot)
	}
	key := SnapshotManifestKey(id)
	data, err := getManifest(ctx, b, key)
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return nil, fmt.Errorf("snapshot %s: %w", id, ErrNoSnapshot)
		}
		return nil, err
	}
	return decodeSnapshot(key, data)
}

func decodeSnapshot(key string, data []byte) (*Snapshot, error) {
	var s Snapshot
	if err := decodeManifest(key, data, &s); err != nil {
		return nil, err
	}
	if err := s.check(key); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Snapshot) check(key string) error {
	switch {
	case s.Format > FormatVersion:
		return &ManifestError{Key: key, Err: fmt.Errorf("format %d is newer than this redback understands (%d): upgrade redback", s.Format, FormatVersion)}
	case s.Format < 1:
		return &ManifestError{Key: key, Err: errors.New("no format version")}
	case s.ID == "" || !ValidID(s.ID):
		return &ManifestError{Key: key, Err: fmt.Errorf("bad id %q", s.ID)}
	case !strings.HasPrefix(s.Object.Key, SnapshotDataPrefix):
		return &ManifestError{Key: key, Err: fmt.Errorf("data key %q outside %s", s.Object.Key, SnapshotDataPrefix)}
	case s.Object.StoredBytes < 0 || s.Object.RawBytes < 0:
		return &ManifestError{Key: key, Err: errors.New("negative size")}
	}
	return nil
}

// ListSnapshots returns every snapshot manifest, newest first. Manifests
// that cannot be read are returned as errs (one per manifest) without
// stopping the listing.
func ListSnapshots(ctx context.Context, b storage.Backend) (snaps []*Snapshot, errs []error, err error) {
	set, err := readManifests(ctx, b, SnapshotPrefix, true)
	if err != nil {
		return nil, nil, fmt.Errorf("list snapshots: %w", err)
	}
	for _, m := range set.list {
		var s *Snapshot
		if err = m.err; err == nil {
			s, err = decodeSnapshot(m.info.Key, m.data)
		}
		if err != nil {
			if !errors.Is(err, storage.ErrNotExist) { // deleted since the listing
				errs = append(errs, err)
			}
			continue
		}
		snaps = append(snaps, s)
	}
	sort.Slice(snaps, func(i, j int) bool {
		if !snaps[i].EndTime.Equal(snaps[j].EndTime) {
			return snaps[i].EndTime.After(snaps[j].EndTime)
		}
		return snaps[i].ID > snaps[j].ID
	})
	return snaps, errs, nil
}

// Latest returns the newest verified snapshot.
func Latest(ctx context.Context, b storage.Backend) (*Snapshot, error) {
	snaps, _, err := ListSnapshots(ctx, b)
	if err != nil {
		return nil, err
	}
	for _, s := range snaps {
		if s.Verified {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%s: %w", b.Location(), ErrNoSnapshot)
}
