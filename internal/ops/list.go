package ops

import (
	"context"
	"fmt"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/storage"
)

// Listing is what a repository holds: the JSON of `redback list --json`.
type Listing struct {
	Repo      string              `json:"repo"`
	Snapshots []*catalog.Snapshot `json:"snapshots"`
	// Generations are the log generations with their point-in-time windows.
	Generations []pitr.Window `json:"generations"`
	// Problems are manifests that could not be read and log generations
	// that could not be listed; each makes the listing incomplete.
	Problems []string `json:"problems"`
}

// List reads a repository's snapshots (newest first) and the windows of its
// log generations (oldest first). A manifest that cannot be read does not
// stop the listing: it is named in Problems, and damaged is true. err is
// set only when nothing could be listed.
func List(ctx context.Context, b storage.Backend) (l *Listing, damaged bool, err error) {
	snaps, bad, err := catalog.ListSnapshots(ctx, b)
	if err != nil {
		return nil, false, err
	}
	l = &Listing{Repo: b.Location(), Snapshots: snaps, Problems: []string{}}
	if l.Snapshots == nil {
		l.Snapshots = []*catalog.Snapshot{}
	}
	for _, e := range bad {
		l.Problems = append(l.Problems, e.Error())
	}
	ws, err := pitr.Windows(ctx, b)
	if err != nil {
		l.Problems = append(l.Problems, fmt.Sprintf("log generations: %v", err))
		bad = append(bad, err)
	}
	l.Generations = ws
	if l.Generations == nil {
		l.Generations = []pitr.Window{}
	}
	return l, len(bad) > 0, nil
}
