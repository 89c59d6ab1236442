package ops

import (
	"fmt"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/storage"
	"redback/internal/storage/cache"
	"redback/internal/storage/file"
)

// syntheticRepo writes a repository of snaps snapshot manifests (one every
// minute) and one generation of segs segment manifests (one a minute: a
// week is 10,080), manifests only: listing reads nothing else.
func syntheticRepo(b *testing.B, snaps, segs int) storage.Backend {
	b.Helper()
	repo, err := file.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	gen := catalog.NewGenerationID(t0, "849eeeb2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	for i := range snaps {
		at := t0.Add(time.Duration(i) * time.Minute)
		s := &catalog.Snapshot{Format: 1, ID: catalog.NewSnapshotID(at), StartTime: at, EndTime: at.Add(time.Second), Method: "sync",
			Source: catalog.Source{Address: "redis://127.0.0.1:6379"}, RDBVersion: 10, Checksum: "ok", Verified: true,
			Digest: "0123456789abcdef0123456789abcdef01234567",
			Census: catalog.Census{Keys: 1000, Types: map[string]int64{"string": 1000}, DBs: []catalog.DBCount{{DB: 0, Keys: 1000}}}}
		s.Object = catalog.Object{Key: catalog.SnapshotDataKey(s.ID, false), RawBytes: 1 << 20, StoredBytes: 1 << 18, Compression: "zstd"}
		if i == 0 {
			s.Generation = gen
			if err := catalog.PutJSON(ctx, repo, catalog.GenerationKey(gen), &catalog.Generation{Format: 1, ID: gen, ReplID: "849eeeb2", BaseSnapshot: s.ID, Created: at}); err != nil {
				b.Fatal(err)
			}
		}
		if err := catalog.PutJSON(ctx, repo, catalog.SnapshotManifestKey(s.ID), s); err != nil {
			b.Fatal(err)
		}
	}
	for i := range segs {
		start, end := int64(i)*1000, int64(i+1)*1000
		ms := t0.Add(time.Duration(i)*time.Minute + 2*time.Second).UnixMilli()
		seg := &catalog.Segment{Format: 1, Generation: gen, Start: start, End: end, FirstMs: ms, LastMs: ms + 900, Commands: 20,
			Object: catalog.Object{Key: catalog.SegmentDataKey(gen, start, end, false), RawBytes: 1000, StoredBytes: 400, Compression: "zstd"},
			Index:  []catalog.Checkpoint{{0, start, ms}}}
		if err := catalog.PutJSON(ctx, repo, catalog.SegmentKey(gen, start, end), seg); err != nil {
			b.Fatal(err)
		}
	}
	return repo
}

// BenchmarkTimeline lists a synthetic repository of 10,000 snapshots and a
// week of segments (one a minute): cold (every manifest read: no index),
// indexed (the packs of the manifest index read, as `redback list` does once
// a writer kept it), and as the agent and `redback ui` do: through the
// manifest cache, and with the last listing reused while one listing of the keys
// shows nothing changed. (No log data: the event scan is incremental.)
func BenchmarkTimeline(b *testing.B) {
	repo := syntheticRepo(b, 10000, 7*24*60)
	now := time.Date(2026, 11, 8, 0, 0, 0, 0, time.UTC)
	check := func(d *TimelineDoc) {
		if s := d.Sources[0]; len(s.Snapshots) != 10000 || len(s.Windows) != 1 || s.Windows[0].Segments != 7*24*60 {
			b.Fatalf("timeline: %d snapshots, %d windows", len(s.Snapshots), len(s.Windows))
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			d, err := Timeline(b.Context(), []Source{{Name: "a", Repo: repo, RepoURL: "file:///r"}}, Query{}, nil, now)
			if err != nil {
				b.Fatal(err)
			}
			check(d)
		}
	})
	b.Run("indexed", func(b *testing.B) {
		// As `redback list` and a fresh `redback ui` read a repository
		// whose writers keep the manifest index: one pack per prefix.
		if err := catalog.IndexManifests(b.Context(), repo); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			d, err := Timeline(b.Context(), []Source{{Name: "a", Repo: repo, RepoURL: "file:///r"}}, Query{}, nil, now)
			if err != nil {
				b.Fatal(err)
			}
			check(d)
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := cache.New(repo, cache.Options{})
		src := []Source{{Name: "a", Repo: c, RepoURL: "file:///r"}}
		ev := &EventScanner{}
		if _, err := Timeline(b.Context(), src, Query{}, nil, now); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			d, err := Timeline(b.Context(), src, Query{}, ev, now)
			if err != nil {
				b.Fatal(err)
			}
			check(d)
		}
		hits, misses, bytes := c.Stats()
		b.ReportMetric(float64(bytes)/(1<<20), "cacheMiB")
		_ = fmt.Sprint(hits, misses)
	})
}
