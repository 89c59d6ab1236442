package ops

import (
	"context"
	"fmt"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/storage"
)

// Listing is what a repository holds: the JSON of `redback list --json`.
// Every snapshot and generation names the source it belongs to.
type Listing struct {
	Repo string `json:"repo"`
	// Sources are the names of the sources listed.
	Sources   []string         `json:"sources"`
	Snapshots []SourceSnapshot `json:"snapshots"`
	// Generations are the log generations with their point-in-time windows.
	Generations []SourceWindow `json:"generations"`
	// Sets are the backup sets of clusters (every set of the repository
	// when no --name was given), newest first.
	Sets []*catalog.Set `json:"sets"`
	// Problems are manifests that could not be read and log generations
	// that could not be listed; each makes the listing incomplete.
	Problems []string `json:"problems"`
}

// SourceSnapshot is a snapshot manifest and the name of its source.
type SourceSnapshot struct {
	SourceName string `json:"source_name"`
	// FromLog marks a snapshot synthesized from the shipped log
	// (method "log"; its source.offset is the state's offset): the
	// timeline draws it apart.
	FromLog bool `json:"from_log,omitempty"`
	*catalog.Snapshot
}

// SourceWindow is a log generation's window and the name of its source.
type SourceWindow struct {
	SourceName string `json:"source_name"`
	pitr.Window
}

// List reads one source's snapshots (newest first) and the windows of its
// log generations (oldest first); b is the source's view of the repository
// and name its name ("" for a repository without sources yet). A manifest
// that cannot be read does not stop the listing: it is named in Problems,
// and damaged is true. err is set only when nothing could be listed.
func List(ctx context.Context, b storage.Backend, name string) (l *Listing, damaged bool, err error) {
	snaps, bad, err := catalog.ListSnapshots(ctx, b)
	if err != nil {
		return nil, false, err
	}
	l = &Listing{Repo: b.Location(), Sources: []string{}, Snapshots: []SourceSnapshot{}, Generations: []SourceWindow{}, Sets: []*catalog.Set{}, Problems: []string{}}
	if name != "" {
		l.Sources = append(l.Sources, name)
	}
	for _, s := range snaps {
		l.Snapshots = append(l.Snapshots, SourceSnapshot{SourceName: name, FromLog: s.FromLog(), Snapshot: s})
	}
	for _, e := range bad {
		l.Problems = append(l.Problems, e.Error())
	}
	ws, err := pitr.Windows(ctx, b)
	if err != nil {
		l.Problems = append(l.Problems, fmt.Sprintf("log generations: %v", err))
		bad = append(bad, err)
	}
	for _, w := range ws {
		l.Generations = append(l.Generations, SourceWindow{SourceName: name, Window: w})
	}
	return l, len(bad) > 0, nil
}

// AddSets lists the backup sets of the repository at base into l (their
// unreadable manifests as problems) and reports whether one was unreadable.
func (l *Listing) AddSets(ctx context.Context, base storage.Backend) (damaged bool, err error) {
	sets, bad, err := catalog.ListSets(ctx, base, "")
	if err != nil {
		return false, err
	}
	l.Sets = append(l.Sets, sets...)
	for _, e := range bad {
		l.Problems = append(l.Problems, e.Error())
	}
	return len(bad) > 0, nil
}

// Add appends the listing of another source to l; its problems are
// prefixed with the source's name.
func (l *Listing) Add(o *Listing) {
	l.Sources = append(l.Sources, o.Sources...)
	l.Snapshots = append(l.Snapshots, o.Snapshots...)
	l.Generations = append(l.Generations, o.Generations...)
	for _, p := range o.Problems {
		if len(o.Sources) == 1 {
			p = "source " + o.Sources[0] + ": " + p
		}
		l.Problems = append(l.Problems, p)
	}
}

// SnapshotList returns the manifests of l's snapshots, in order.
func (l *Listing) SnapshotList() []*catalog.Snapshot {
	out := make([]*catalog.Snapshot, len(l.Snapshots))
	for i, s := range l.Snapshots {
		out[i] = s.Snapshot
	}
	return out
}

// Windows returns l's generation windows, in order.
func (l *Listing) Windows() []pitr.Window {
	out := make([]pitr.Window, len(l.Generations))
	for i, w := range l.Generations {
		out[i] = w.Window
	}
	return out
}
