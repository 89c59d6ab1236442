package catalog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"redback/internal/storage"
)

// SetPrefix is where backup sets lie, at the repository level (not inside
// a source): sets/<cluster>/<set id>.json.
const SetPrefix = "sets/"

// ErrNoSet is returned when a repository holds no (matching) backup set.
var ErrNoSet = errors.New("no backup set in the repository")

// Set is the manifest of a backup set: one snapshot per shard of a Redis
// Cluster, taken together. It is written after every shard's snapshot
// manifest, so a set that is visible is complete.
type Set struct {
	Format    int       `json:"format"`
	ID        string    `json:"id"`
	Cluster   string    `json:"cluster"`
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
	Duration  float64   `json:"duration_seconds"`
	// Seed is the node the backup was pointed at (masked address).
	Seed string `json:"seed"`
	// Via is how the shards were found: "CLUSTER SHARDS" or "CLUSTER NODES".
	Via    string     `json:"via"`
	Shards []SetShard `json:"shards"`
	Keys   int64      `json:"keys"`
	// Digest is the union digest of the shards: what DEBUG DIGEST reports
	// on one server holding every key of the set (digest.Union).
	Digest string `json:"digest"`
	// Migration records what was done about slots migrating or importing
	// when the set was taken (absent: none were).
	Migration *SetMigration `json:"migration,omitempty"`
	Keep      bool          `json:"keep,omitempty"`
	// Method is "log" for a set whose shards' snapshots were synthesized
	// from their shipped logs (the agent's snapshot method log): each
	// shard's Node is then its primary, whose stream the log holds.
	// Empty: the shards were read from the nodes.
	Method string `json:"method,omitempty"`
}

// SetShard is one shard of a backup set.
type SetShard struct {
	Source   string   `json:"source"`   // the repository source holding the snapshot
	Snapshot string   `json:"snapshot"` // the snapshot id in that source
	Slots    [][2]int `json:"slots"`    // inclusive slot ranges the shard served
	// Primary is the shard's primary node id and address; Node the node
	// read (a replica, or the primary) and Role its role.
	Primary        string `json:"primary"`
	PrimaryAddress string `json:"primary_address"`
	Node           string `json:"node"`
	NodeAddress    string `json:"node_address"`
	Role           string `json:"role"`
	ReplID         string `json:"replid,omitempty"`
	Offset         int64  `json:"offset"`
	Keys           int64  `json:"keys"`
	Digest         string `json:"digest"`
}

// SetMigration says what a set backup did about slot migrations.
type SetMigration struct {
	// Seen lists the migrations found first ("slot 42 migrating to ab12cd34").
	Seen []string `json:"seen"`
	// WaitedSeconds is how long the backup waited for them to end.
	WaitedSeconds float64 `json:"waited_seconds"`
	// Outcome is "waited" (they ended, then the set was taken).
	Outcome string `json:"outcome"`
}

// SetKey is the manifest key of set id of cluster.
func SetKey(cluster, id string) string { return SetPrefix + cluster + "/" + id + ".json" }

// PutSet writes the manifest of s (after its shards' snapshots).
func PutSet(ctx context.Context, b storage.Backend, s *Set) error {
	return PutJSON(ctx, b, SetKey(s.Cluster, s.ID), s)
}

// ReadSet loads and checks the manifest of set id of cluster.
func ReadSet(ctx context.Context, b storage.Backend, cluster, id string) (*Set, error) {
	if !ValidID(id) || ValidSourceName(cluster) != nil {
		return nil, fmt.Errorf("set %s/%s: %w", cluster, id, ErrNoSet)
	}
	key := SetKey(cluster, id)
	var s Set
	if err := GetJSON(ctx, b, key, &s); err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return nil, fmt.Errorf("set %s: %w", id, ErrNoSet)
		}
		return nil, err
	}
	switch {
	case s.Format > FormatVersion:
		return nil, &ManifestError{Key: key, Err: fmt.Errorf("format %d is newer than this redback understands (%d): upgrade redback", s.Format, FormatVersion)}
	case s.Format < 1:
		return nil, &ManifestError{Key: key, Err: errors.New("no format version")}
	case s.ID != id || s.Cluster != cluster:
		return nil, &ManifestError{Key: key, Err: fmt.Errorf("names set %s/%s", s.Cluster, s.ID)}
	case len(s.Shards) == 0:
		return nil, &ManifestError{Key: key, Err: errors.New("no shard")}
	}
	for _, sh := range s.Shards {
		if ValidSourceName(sh.Source) != nil || !ValidID(sh.Snapshot) {
			return nil, &ManifestError{Key: key, Err: fmt.Errorf("bad shard %q/%q", sh.Source, sh.Snapshot)}
		}
	}
	return &s, nil
}

// ListSets returns the sets of cluster (every cluster when ""), newest
// first. Manifests that cannot be read are returned as errs.
func ListSets(ctx context.Context, b storage.Backend, cluster string) (sets []*Set, errs []error, err error) {
	prefix := SetPrefix
	if cluster != "" {
		prefix += cluster + "/"
	}
	type ref struct{ cluster, id string }
	var refs []ref
	err = b.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		c, name, ok := strings.Cut(strings.TrimPrefix(oi.Key, SetPrefix), "/")
		if id, isJSON := strings.CutSuffix(name, ".json"); ok && isJSON && !strings.Contains(id, "/") {
			refs = append(refs, ref{c, id})
		}
		return nil
	})
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list sets: %w", err)
	}
	for _, r := range refs {
		s, err := ReadSet(ctx, b, r.cluster, r.id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sets = append(sets, s)
	}
	sort.Slice(sets, func(i, j int) bool {
		if !sets[i].EndTime.Equal(sets[j].EndTime) {
			return sets[i].EndTime.After(sets[j].EndTime)
		}
		return sets[i].ID > sets[j].ID
	})
	return sets, errs, nil
}

// FindSet returns set id (of any cluster), or the newest set of cluster
// when id is "" (every cluster when cluster is "" too).
func FindSet(ctx context.Context, b storage.Backend, cluster, id string) (*Set, error) {
	sets, _, err := ListSets(ctx, b, cluster)
	if err != nil {
		return nil, err
	}
	for _, s := range sets {
		if id == "" || s.ID == id {
			return s, nil
		}
	}
	if id != "" {
		return nil, fmt.Errorf("set %s: %w", id, ErrNoSet)
	}
	return nil, fmt.Errorf("%s: %w", b.Location(), ErrNoSet)
}

// ShardSourceName is the source a cluster's shard is stored as: the
// cluster's name, "-shard-" and the first slot the shard served when it
// was first backed up, five digits (cache-shard-05461).
func ShardSourceName(cluster string, firstSlot int) string {
	return fmt.Sprintf("%s-shard-%05d", cluster, firstSlot)
}

// SlotMap records which shard served which slots from a moment on, while a
// cluster's shards were shipped (`redback ship` of a cluster writes one at
// its start and at each change): sets/<cluster>/slotmaps/<id>.json.
type SlotMap struct {
	Format  int    `json:"format"`
	ID      string `json:"id"`
	Cluster string `json:"cluster"`
	// Time is when the map was first seen (it took effect at or before).
	Time   time.Time      `json:"time"`
	Shards []SlotMapShard `json:"shards"`
}

// SlotMapShard is one shard of a SlotMap.
type SlotMapShard struct {
	Source         string   `json:"source"` // the repository source its log is shipped to
	Primary        string   `json:"primary"`
	PrimaryAddress string   `json:"primary_address"`
	Slots          [][2]int `json:"slots"`
}

// SlotMapKey is the key of slot map id of cluster.
func SlotMapKey(cluster, id string) string { return SetPrefix + cluster + "/slotmaps/" + id + ".json" }

// PutSlotMap stores m.
func PutSlotMap(ctx context.Context, b storage.Backend, m *SlotMap) error {
	return PutJSON(ctx, b, SlotMapKey(m.Cluster, m.ID), m)
}

// ListSlotMaps returns the slot maps of cluster, oldest first.
func ListSlotMaps(ctx context.Context, b storage.Backend, cluster string) ([]*SlotMap, error) {
	prefix := SetPrefix + cluster + "/slotmaps/"
	var keys []string
	err := b.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if strings.HasSuffix(oi.Key, ".json") {
			keys = append(keys, oi.Key)
		}
		return nil
	})
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list slot maps: %w", err)
	}
	var out []*SlotMap
	for _, k := range keys {
		var m SlotMap
		if err := GetJSON(ctx, b, k, &m); err != nil {
			return nil, err
		}
		out = append(out, &m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}
