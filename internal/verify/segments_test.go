package verify

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr/pitrtest"
	"redback/internal/storage"
	"redback/internal/storage/mem"
)

// logRepo writes a base snapshot manifest (no data needed for the log
// checker) and a generation of 30 SETs in 3 segments, omitting omit.
func logRepo(t *testing.T, omit []int) (storage.Backend, []*catalog.Segment) {
	t.Helper()
	ctx := context.Background()
	b := mem.New()
	base := "20261125T140000.000Z-base00"
	s := &catalog.Snapshot{Format: catalog.FormatVersion, ID: base, Verified: true, Generation: "gen1",
		Object: catalog.Object{Key: catalog.SnapshotDataKey(base, false)}}
	if err := catalog.PutJSON(ctx, b, catalog.SnapshotManifestKey(base), s); err != nil {
		t.Fatal(err)
	}
	g := pitrtest.Generation{ID: "gen1", ReplID: strings.Repeat("a", 40), StartOffset: 100, BaseSnapshot: base,
		Created: time.UnixMilli(1_795_000_000_000), SplitAt: []int{10, 20}, Omit: omit}
	off, ms := int64(100), int64(1_795_000_000_000)
	for i := 0; i < 30; i++ {
		c := pitrtest.Cmd{Args: [][]byte{[]byte("SET"), []byte("k"), []byte{byte('a' + i%26)}}, Offset: off, Ms: ms}
		g.Cmds = append(g.Cmds, c)
		off += c.Len()
		ms += 7
	}
	segs, err := pitrtest.Write(ctx, b, g)
	if err != nil {
		t.Fatal(err)
	}
	return b, segs
}

func TestSegments_Check(t *testing.T) {
	ctx := context.Background()
	t.Run("good", func(t *testing.T) {
		b, _ := logRepo(t, nil)
		sum, err := Run(ctx, b, Options{Checkers: []Checker{Segments{}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range sum.Findings {
			// The base's data object is not written here: only log findings count.
			if strings.HasPrefix(f.Object, "gens/") || strings.HasPrefix(f.Object, "data/gens/") {
				t.Fatalf("finding on a good log: %v", f)
			}
		}
	})
	t.Run("gap", func(t *testing.T) {
		b, _ := logRepo(t, []int{1})
		sum, err := Run(ctx, b, Options{Checkers: []Checker{Segments{}}})
		if err != nil {
			t.Fatal(err)
		}
		if sum.OK() || !strings.Contains(codes(sum.Findings), CodeGap) {
			t.Fatalf("gap not reported: %v", sum.Findings)
		}
	})
	t.Run("bit flip", func(t *testing.T) {
		b, segs := logRepo(t, nil)
		key := segs[2].Object.Key
		rc, err := b.Get(ctx, key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		data[len(data)/2] ^= 1
		if _, err := b.Put(ctx, key, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		sum, err := Run(ctx, b, Options{Checkers: []Checker{Segments{}}})
		if err != nil {
			t.Fatal(err)
		}
		if sum.OK() || !strings.Contains(sum.Findings[len(sum.Findings)-1].Object, key) {
			t.Fatalf("damaged segment not named: %v", sum.Findings)
		}
	})
	t.Run("missing base", func(t *testing.T) {
		b, _ := logRepo(t, nil)
		if err := b.Delete(ctx, catalog.SnapshotManifestKey("20261125T140000.000Z-base00")); err != nil {
			t.Fatal(err)
		}
		sum, err := Run(ctx, b, Options{Checkers: []Checker{Segments{}}})
		if err != nil {
			t.Fatal(err)
		}
		if sum.OK() || !strings.Contains(codes(sum.Findings), CodeBase) {
			t.Fatalf("missing base not reported: %v", sum.Findings)
		}
	})
}
