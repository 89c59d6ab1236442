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
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"redback/internal/storage"
)

// IndexPrefix holds the manifest index: packs of copies of the manifests
// under one prefix (index/snapshots/, index/gens/<gen>/segs/), so that a
// listing reads a few packs instead of one object per manifest.
//
// The index is a cache, never the record. A pack's copy of a manifest is
// used only while a listing of the manifest's key shows the same size,
// modification time and ETag as when the copy was taken; otherwise the
// manifest itself is read. A missing, damaged or stale pack costs time,
// never a wrong answer. Writers (snapshot, prune) keep it; readers never
// write.
const IndexPrefix = "index/"

// indexFormat is the version of the packs this code writes and reads;
// packs of another version are ignored.
const indexFormat = 1

// Index upkeep: a new pack is written when this many listed manifests are
// read one by one, or the prefix has this many packs.
const (
	indexMinUncovered = 32
	indexMaxPacks     = 4
)

// maxPackBytes bounds what reading one pack may allocate (decompressed).
const maxPackBytes = 512 << 20

// manifestReaders is how many manifests are read at once when the index
// does not cover them (fewer when the backend says so).
const manifestReaders = 16

type indexPack struct {
	Format  int          `json:"format"`
	Prefix  string       `json:"prefix"`
	Entries []indexEntry `json:"entries"`
}

// indexEntry is a copy of the manifest at Key, taken when a listing showed
// it with this size, modification time and ETag.
type indexEntry struct {
	Key      string          `json:"key"`
	Size     int64           `json:"size"`
	ModTime  time.Time       `json:"mtime"`
	ETag     string          `json:"etag,omitempty"`
	Manifest json.RawMessage `json:"manifest"`
}

func (e *indexEntry) covers(oi storage.ObjectInfo) bool {
	return e.Key == oi.Key && e.Size == oi.Size && e.ModTime.Equal(oi.ModTime) && e.ETag == oi.ETag
}

// manifest is one listed manifest and its bytes (or why they could not be
// read).
type manifest struct {
	info storage.ObjectInfo
	data []byte
	err  error
}

// manifestSet is what readManifests found under a prefix.
type manifestSet struct {
	list      []manifest // in key order
	packs     []string   // the pack keys read
	uncovered int        // manifests read one by one
}

// readManifests lists the ".json" objects directly under prefix (not in
// its sub-folders when flat) and returns their bytes: from the index where
// it covers them, else read from the store, several at once.
func readManifests(ctx context.Context, b storage.Backend, prefix string, flat bool) (*manifestSet, error) {
	var infos []storage.ObjectInfo
	err := b.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		name := strings.TrimPrefix(oi.Key, prefix)
		if strings.HasSuffix(name, ".json") && (!flat || !strings.Contains(name, "/")) {
			infos = append(infos, oi)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	set := &manifestSet{list: make([]manifest, len(infos))}
	idx := map[string]*indexEntry{}
	if len(infos) > 0 && !direct(ctx) {
		set.packs, idx = loadIndex(ctx, b, prefix, infos)
	}
	g, gctx := errgroup.WithContext(ctx)
	n := manifestReaders
	if c := b.Properties().Connections; c > 0 && c < n {
		n = c
	}
	g.SetLimit(n)
	for i, oi := range infos {
		set.list[i].info = oi
		if e := idx[oi.Key]; e != nil {
			set.list[i].data = e.Manifest
			continue
		}
		set.uncovered++
		m := &set.list[i]
		g.Go(func() error {
			m.data, m.err = getManifest(gctx, b, oi.Key)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

// loadIndex reads prefix's packs and returns the entries that cover a
// listed manifest. A pack that cannot be read is skipped.
func loadIndex(ctx context.Context, b storage.Backend, prefix string, infos []storage.ObjectInfo) ([]string, map[string]*indexEntry) {
	var packs []string
	_ = b.List(ctx, IndexPrefix+prefix, func(oi storage.ObjectInfo) error {
		if rest := strings.TrimPrefix(oi.Key, IndexPrefix+prefix); !strings.Contains(rest, "/") && strings.HasSuffix(rest, ".json.zst") {
			packs = append(packs, oi.Key)
		}
		return nil
	})
	listed := make(map[string]storage.ObjectInfo, len(infos))
	for _, oi := range infos {
		listed[oi.Key] = oi
	}
	out := map[string]*indexEntry{}
	for _, key := range packs {
		p, err := readPack(ctx, b, key)
		if err != nil || p.Format != indexFormat || p.Prefix != prefix {
			continue
		}
		for i := range p.Entries {
			e := &p.Entries[i]
			if oi, ok := listed[e.Key]; ok && e.covers(oi) {
				out[e.Key] = e
			}
		}
	}
	return packs, out
}

func readPack(ctx context.Context, b storage.Backend, key string) (*indexPack, error) {
	rc, err := b.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	zr, err := zstd.NewReader(rc, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxPackBytes))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	var p indexPack
	r := io.LimitReader(zr, maxPackBytes)
	if err := json.NewDecoder(r).Decode(&p); err != nil {
		return nil, fmt.Errorf("index pack %s: %w", key, err)
	}
	// Read to the end: the zstd frame's checksum is checked there, so a
	// pack damaged at rest is never used even where its damaged bytes
	// still decode as JSON.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, fmt.Errorf("index pack %s: %w", key, err)
	}
	return &p, nil
}

// IndexManifests brings the index of the manifests under the snapshot
// prefix and every generation's segment prefix up to date: where many
// manifests are not covered (or packs have piled up), one new pack replaces
// the old ones. A writer calls it after it published; it never touches a
// manifest, and its failure loses nothing.
func IndexManifests(ctx context.Context, b storage.Backend) error {
	errs := []error{indexPrefix(ctx, b, SnapshotPrefix, true)}
	gens, err := ListGenerations(ctx, b)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	known := map[string]bool{}
	for _, g := range gens {
		known[g.ID] = true
		errs = append(errs, indexPrefix(ctx, b, SegmentPrefix(g.ID), false))
	}
	// Packs of generations pruned since.
	err = b.List(ctx, IndexPrefix+GenerationPrefix, func(oi storage.ObjectInfo) error {
		id, _, _ := strings.Cut(strings.TrimPrefix(oi.Key, IndexPrefix+GenerationPrefix), "/")
		if !known[id] {
			if _, err := b.Stat(ctx, GenerationKey(id)); errors.Is(err, storage.ErrNotExist) {
				errs = append(errs, b.Delete(ctx, oi.Key))
			}
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

func indexPrefix(ctx context.Context, b storage.Backend, prefix string, flat bool) error {
	set, err := readManifests(ctx, b, prefix, flat)
	if err != nil {
		return fmt.Errorf("index %s: %w", prefix, err)
	}
	if set.uncovered < indexMinUncovered && len(set.packs) < indexMaxPacks {
		return nil
	}
	p := indexPack{Format: indexFormat, Prefix: prefix}
	for _, m := range set.list {
		if m.err == nil && json.Valid(m.data) {
			p.Entries = append(p.Entries, indexEntry{Key: m.info.Key, Size: m.info.Size, ModTime: m.info.ModTime, ETag: m.info.ETag, Manifest: m.data})
		}
	}
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	if err := json.NewEncoder(zw).Encode(&p); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	key := fmt.Sprintf("%s%s%s-%s.json.zst", IndexPrefix, prefix, time.Now().UTC().Format("20060102T150405.000000000Z"), hex.EncodeToString(r[:]))
	// Created with PutIf so that a store's retention lock (which Put
	// applies) never pins a pack: packs are replaced, not kept.
	if _, err := b.PutIf(ctx, key, buf.Bytes(), storage.Condition{IfAbsent: true}); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	var errs []error
	for _, old := range set.packs {
		if err := b.Delete(ctx, old); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", old, err))
		}
	}
	return errors.Join(errs...)
}

type directKey struct{}

// Direct returns a context under which listings read every manifest from
// the store, ignoring the index (verify uses it: it checks the record).
func Direct(ctx context.Context) context.Context { return context.WithValue(ctx, directKey{}, true) }

func direct(ctx context.Context) bool { v, _ := ctx.Value(directKey{}).(bool); return v }
