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

// DrillPrefix holds the records of restore drills: drills/<id>.json.
const DrillPrefix = "drills/"

// Drill is the record a restore drill leaves in the repository, so that
// every reader (the timeline, `redback ui`) sees when the data was last
// proven restorable and how long it took.
type Drill struct {
	Format int       `json:"format"`
	ID     string    `json:"id"`
	Time   time.Time `json:"time"` // when the drill started
	OK     bool      `json:"ok"`
	// Kind is what was restored: "snapshot" or "pitr" (a point in time).
	Kind     string `json:"kind"`
	Snapshot string `json:"snapshot"`
	// Point is the time of the restored state.
	Point               time.Time `json:"point,omitzero"`
	RTOSeconds          float64   `json:"rto_seconds"`
	RTOObjectiveSeconds float64   `json:"rto_objective_seconds,omitempty"`
	RTOMet              bool      `json:"rto_met"`
	DigestMatch         bool      `json:"digest_match"`
	RawBytes            int64     `json:"raw_bytes"`
	// Detail says what failed, when something did.
	Detail string `json:"detail,omitempty"`
}

// DrillKey is the key of drill record id.
func DrillKey(id string) string { return DrillPrefix + id + ".json" }

// PutDrill stores d under a new id (set on d).
func PutDrill(ctx context.Context, b storage.Backend, d *Drill) error {
	d.Format = FormatVersion
	d.ID = NewSnapshotID(d.Time)
	return PutJSON(ctx, b, DrillKey(d.ID), d)
}

// ListDrills returns every drill record, newest first; records that cannot
// be read are returned as bad without stopping the listing.
func ListDrills(ctx context.Context, b storage.Backend) (drills []Drill, bad []error, err error) {
	var keys []string
	err = b.List(ctx, DrillPrefix, func(oi storage.ObjectInfo) error {
		if name := strings.TrimPrefix(oi.Key, DrillPrefix); strings.HasSuffix(name, ".json") && !strings.Contains(name, "/") {
			keys = append(keys, oi.Key)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list drills: %w", err)
	}
	for _, k := range keys {
		var d Drill
		if err := GetJSON(ctx, b, k, &d); err != nil {
			if !errors.Is(err, storage.ErrNotExist) {
				bad = append(bad, err)
			}
			continue
		}
		if d.Format > FormatVersion {
			bad = append(bad, &ManifestError{Key: k, Err: fmt.Errorf("format %d is newer than this redback understands", d.Format)})
			continue
		}
		drills = append(drills, d)
	}
	sort.SliceStable(drills, func(i, j int) bool { return drills[i].Time.After(drills[j].Time) })
	return drills, bad, nil
}
