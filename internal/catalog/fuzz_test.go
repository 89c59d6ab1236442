package catalog

import (
	"bytes"
	"context"
	"testing"

	"redback/internal/storage/mem"
)

// FuzzManifests feeds arbitrary bytes to every manifest reader: they must
// return an error or a sane value, never panic or allocate without bound.
func FuzzManifests(f *testing.F) {
	f.Add([]byte(`{"format":1,"id":"20261125T140312.123Z-a1b2c3","object":{"key":"data/snapshots/x.rdb.zst","stored_bytes":10},"verified":true}`))
	f.Add([]byte(`{"format":1,"generation":"g","start":5,"end":9,"object":{"key":"data/gens/g/0-9.aof.zst"},"index":[[0,5,1700000000000]]}`))
	f.Add([]byte(`{"format":1,"id":"g","replid":"abc","start_offset":5}`))
	f.Add([]byte(`{"format":99}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		ctx := context.Background()
		b := mem.New()
		for _, key := range []string{SnapshotManifestKey("20261125T140312.123Z-a1b2c3"), GenerationKey("g"), SegmentKey("g", 0, 9)} {
			if _, err := b.Put(ctx, key, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
		}
		if s, err := ReadSnapshot(ctx, b, "20261125T140312.123Z-a1b2c3"); err == nil && (s.ID == "" || s.Format < 1) {
			t.Fatalf("accepted a manifest without id or format: %+v", s)
		}
		_, _, _ = ListSnapshots(ctx, b)
		if g, err := ReadGeneration(ctx, b, "g"); err == nil {
			segs, err := ListSegments(ctx, b, "g")
			if err == nil {
				_ = Contiguity(g, segs)
			}
		}
	})
}
