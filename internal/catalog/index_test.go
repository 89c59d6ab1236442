package catalog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"redback/internal/storage"
	"redback/internal/storage/file"
	"redback/internal/storage/mem"
)

// countingBackend counts whole-object Gets.
type countingBackend struct {
	storage.Backend
	gets atomic.Int64
}

func (c *countingBackend) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	c.gets.Add(1)
	return c.Backend.Get(ctx, key, off, n)
}

// sameListing asserts that the indexed listing equals the direct one.
func sameListing(t *testing.T, b storage.Backend) []*Snapshot {
	t.Helper()
	want, _, err := ListSnapshots(Direct(t.Context()), b)
	if err != nil {
		t.Fatal(err)
	}
	got, errs, err := ListSnapshots(t.Context(), b)
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("indexed listing differs from the manifests: %d vs %d snapshots", len(got), len(want))
	}
	return got
}

func TestIndex_ListingsReadPacksAndStayTrue(t *testing.T) {
	for name, b := range map[string]storage.Backend{"mem": mem.New(), "file": mustFile(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			cb := &countingBackend{Backend: b}
			base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			var ids []string
			for i := range 100 {
				at := base.Add(time.Duration(i) * time.Minute)
				id := NewSnapshotID(at)
				ids = append(ids, id)
				s := &Snapshot{Format: FormatVersion, ID: id, StartTime: at, EndTime: at, Verified: true, Object: Object{Key: SnapshotDataKey(id, false)}}
				if err := PutJSON(ctx, b, SnapshotManifestKey(id), s); err != nil {
					t.Fatal(err)
				}
			}
			gen := NewGenerationID(base, "849eeeb2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
			if err := PutJSON(ctx, b, GenerationKey(gen), &Generation{Format: 1, ID: gen, BaseSnapshot: ids[0], Created: base}); err != nil {
				t.Fatal(err)
			}
			for i := range int64(50) {
				seg := &Segment{Format: 1, Generation: gen, Start: i * 10, End: (i + 1) * 10, Object: Object{Key: SegmentDataKey(gen, i*10, (i+1)*10, false)}}
				if err := PutJSON(ctx, b, SegmentKey(gen, seg.Start, seg.End), seg); err != nil {
					t.Fatal(err)
				}
			}

			// No index yet: one Get per manifest.
			sameListing(t, cb)
			cb.gets.Store(0)
			if _, _, err := ListSnapshots(ctx, cb); err != nil || cb.gets.Load() != 100 {
				t.Fatalf("unindexed listing: %d gets, %v", cb.gets.Load(), err)
			}
			if err := IndexManifests(ctx, b); err != nil {
				t.Fatal(err)
			}
			// Indexed: one Get (the pack) for 100 snapshots, one for 50 segments.
			cb.gets.Store(0)
			sameListing(t, cb)
			segs, err := ListSegments(ctx, cb, gen)
			if err != nil || len(segs) != 50 {
				t.Fatalf("segments: %d, %v", len(segs), err)
			}
			if n := cb.gets.Load(); n != 1+100+1 { // the pack, the direct listing, the segment pack
				t.Fatalf("indexed listing made %d gets, want 102", n)
			}

			// A manifest rewritten (marked keep), one deleted, one added: the
			// listing says what the manifests say.
			s, err := ReadSnapshot(ctx, b, ids[7])
			if err != nil {
				t.Fatal(err)
			}
			s.Keep = true
			if err := PutJSON(ctx, b, SnapshotManifestKey(s.ID), s); err != nil {
				t.Fatal(err)
			}
			if err := b.Delete(ctx, SnapshotManifestKey(ids[8])); err != nil {
				t.Fatal(err)
			}
			at := base.Add(time.Hour * 3)
			nid := NewSnapshotID(at)
			if err := PutJSON(ctx, b, SnapshotManifestKey(nid), &Snapshot{Format: FormatVersion, ID: nid, EndTime: at, Object: Object{Key: SnapshotDataKey(nid, false)}}); err != nil {
				t.Fatal(err)
			}
			got := sameListing(t, cb)
			if len(got) != 100 || got[0].ID != nid {
				t.Fatalf("after changes: %d snapshots, newest %s", len(got), got[0].ID)
			}
			cb.gets.Store(0)
			if _, _, err := ListSnapshots(ctx, cb); err != nil || cb.gets.Load() != 3 { // pack + rewritten + new
				t.Fatalf("listing after changes made %d gets, want 3 (%v)", cb.gets.Load(), err)
			}

			// A damaged pack costs Gets, never a wrong answer.
			var packs []string
			_ = b.List(ctx, IndexPrefix, func(oi storage.ObjectInfo) error { packs = append(packs, oi.Key); return nil })
			if len(packs) != 2 {
				t.Fatalf("packs: %v", packs)
			}
			for _, p := range packs {
				if _, err := b.Put(ctx, p, strings.NewReader("not a pack")); err != nil {
					t.Fatal(err)
				}
			}
			sameListing(t, cb)
			if segs, err := ListSegments(ctx, b, gen); err != nil || len(segs) != 50 {
				t.Fatalf("segments with a damaged pack: %d, %v", len(segs), err)
			}

			// Upkeep replaces the packs; a pruned generation's pack goes.
			if err := IndexManifests(ctx, b); err != nil {
				t.Fatal(err)
			}
			if err := b.Delete(ctx, GenerationKey(gen)); err != nil {
				t.Fatal(err)
			}
			if err := IndexManifests(ctx, b); err != nil {
				t.Fatal(err)
			}
			packs = packs[:0]
			_ = b.List(ctx, IndexPrefix, func(oi storage.ObjectInfo) error { packs = append(packs, oi.Key); return nil })
			if len(packs) != 1 || !strings.HasPrefix(packs[0], IndexPrefix+SnapshotPrefix) {
				t.Fatalf("packs after upkeep: %v", packs)
			}
			sameListing(t, cb)
		})
	}
}

func mustFile(t *testing.T) storage.Backend {
	t.Helper()
	b, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIndex_DamagedPackNeverChangesAListing damages a pack at rest in the
// ways a disk or a store can (a bit flipped, a cut, bytes appended, at
// positions spread over the whole pack): the listing stays exactly what
// the manifests say.
func TestIndex_DamagedPackNeverChangesAListing(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	gen := NewGenerationID(base, "849eeeb2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	for i := range int64(40) {
		seg := &Segment{Format: 1, Generation: gen, Start: i * 10, End: (i + 1) * 10, Commands: 3 + i, FirstMs: 1000 * i, LastMs: 1000*i + 999,
			Object: Object{Key: SegmentDataKey(gen, i*10, (i+1)*10, false), StoredBytes: 50 + i, SHA256: strings.Repeat("ab", 32)}}
		if err := PutJSON(ctx, b, SegmentKey(gen, seg.Start, seg.End), seg); err != nil {
			t.Fatal(err)
		}
	}
	if err := PutJSON(ctx, b, GenerationKey(gen), &Generation{Format: 1, ID: gen, Created: base}); err != nil {
		t.Fatal(err)
	}
	want, err := ListSegments(Direct(ctx), b, gen)
	if err != nil || len(want) != 40 {
		t.Fatalf("segments %d, %v", len(want), err)
	}
	if err := IndexManifests(ctx, b); err != nil {
		t.Fatal(err)
	}
	var pack string
	_ = b.List(ctx, IndexPrefix, func(oi storage.ObjectInfo) error { pack = oi.Key; return nil })
	if pack == "" {
		t.Fatal("no pack written")
	}
	rc, err := b.Get(ctx, pack, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, data []byte) {
		t.Helper()
		if _, err := b.Put(ctx, pack, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		got, err := ListSegments(ctx, b, gen)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: the listing differs from the manifests", what)
		}
	}
	// About 150 positions spread over the whole pack (each check is a
	// listing, slow under the race detector).
	step := max(1, len(orig)/150)
	for i := 0; i < len(orig); i += step {
		d := append([]byte(nil), orig...)
		d[i] ^= 1 << (i % 8)
		check(fmt.Sprintf("bit %d flipped at %d of %d", i%8, i, len(orig)), d)
		check(fmt.Sprintf("cut to %d of %d bytes", i, len(orig)), orig[:i])
	}
	check("the last byte flipped", append(append([]byte(nil), orig[:len(orig)-1]...), orig[len(orig)-1]^0x01))
	check("bytes appended", append(append([]byte(nil), orig...), "garbage"...))
	check("intact", orig)
}
