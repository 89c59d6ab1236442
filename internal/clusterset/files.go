package clusterset

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/cluster"
	"redback/internal/digest"
	"redback/internal/rdb"
	"redback/internal/redisurl"
	"redback/internal/restore"
	"redback/internal/storage"
)

// FileResult is one RDB file written by ToRDB or ToNodeDirs.
type FileResult struct {
	Path string `json:"path"`
	// Node, NodeID and Slots name the target primary the file is for
	// (ToNodeDirs) and the slots it served when the files were planned.
	Node    string   `json:"node,omitempty"`
	NodeID  string   `json:"node_id,omitempty"`
	Slots   [][2]int `json:"slots,omitempty"`
	Keys    int64    `json:"keys"`
	Expired int64    `json:"keys_expired"` // of Keys, already expired (kept: a primary drops them while loading)
	Digest  string   `json:"digest"`       // DEBUG DIGEST of a server that loaded the file (expired keys included)
}

// FilesResult is what ToRDB or ToNodeDirs wrote.
type FilesResult struct {
	Files []FileResult `json:"files"`
	// Digest is the union of the files' digests: the set's digest when
	// every key was written.
	Digest    string        `json:"digest"`
	Keys      int64         `json:"keys"`
	Expired   int64         `json:"keys_expired"`
	Functions int           `json:"functions"` // function libraries written into each file
	Bytes     int64         `json:"bytes"`     // RDB bytes read from the shards' snapshots
	Notes     []string      `json:"notes,omitempty"`
	Duration  time.Duration `json:"-"`
}

// DigestError says that files written from a set do not hold the set's
// keys: nothing was published.
type DigestError struct {
	Set, Want, Got string
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("set %s: the union digest of the files written is %s, the set's is %s: nothing was published", e.Set, e.Got, e.Want)
}

// VerificationFailed marks the error as a failed verification (exit 3).
func (e *DigestError) VerificationFailed() bool { return true }

// ToRDB writes every key of set into one RDB file at path (db 0): what a
// standalone server holding the whole cluster loads. See ToNodeDirs for how
// it is written and checked.
func ToRDB(ctx context.Context, repo storage.Backend, set *catalog.Set, path string, o restore.Options, ids []age.Identity) (*FilesResult, error) {
	return writeFiles(ctx, repo, set, []FileResult{{Path: path}}, nil, o, ids)
}

// NodeDirName is the directory ToNodeDirs writes a target node's dump.rdb
// in: its address with ':' as '-' ("10.0.0.5-6379"; brackets of an IPv6
// address dropped).
func NodeDirName(addr string) string {
	return strings.NewReplacer("[", "", "]", "", ":", "-").Replace(addr)
}

// ToNodeDirs writes the keys of set as one data dir per primary of the
// target cluster (the cluster at slotsFrom, read now): DIR/<NodeDirName of
// the primary>/dump.rdb holds the keys of the slots that primary serves,
// each key routed by the CRC16 slot of its name (or hash tag). Stop the
// target's nodes, put each file in its node's data dir (nodes.conf kept)
// and start them: each loads exactly the keys of its slots.
//
// The shards' snapshots are read one after another (each verified to its
// stored sha256 on the way); every file gets the function libraries of the
// first shard; keys already expired are kept (counted), as in a dump of
// the source. Each file is written as a temporary file beside its path and
// published only once all are written and the union of their digests is
// the set's (a *DigestError when not; exit 3). An existing dump.rdb is
// refused unless o.Force.
func ToNodeDirs(ctx context.Context, repo storage.Backend, set *catalog.Set, dir string, slotsFrom *redisurl.URL, o restore.Options, ids []age.Identity) (*FilesResult, error) {
	topo, err := cluster.Discover(ctx, slotsFrom)
	if err != nil {
		return &FilesResult{}, fmt.Errorf("--slots-from %s: %w", slotsFrom.Redacted(), err)
	}
	if topo.Uncovered > 0 {
		return &FilesResult{}, fmt.Errorf("--slots-from %s: %d slots are served by no node: fix the cluster (redis-cli --cluster fix) first", slotsFrom.Redacted(), topo.Uncovered)
	}
	var files []FileResult
	var notes []string
	for _, s := range topo.Shards {
		d := filepath.Join(dir, NodeDirName(s.Primary.Addr))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return &FilesResult{}, err
		}
		moved, err := restore.PrepareDir(d, o.Force)
		if err != nil {
			return &FilesResult{}, err
		}
		notes = append(notes, moved...)
		f := FileResult{Path: filepath.Join(d, "dump.rdb"), Node: s.Primary.Addr, NodeID: s.Primary.ID}
		for _, r := range s.Slots {
			f.Slots = append(f.Slots, r)
		}
		files = append(files, f)
	}
	for _, m := range topo.Migrations {
		notes = append(notes, fmt.Sprintf("--slots-from: %s (seen by %s): its keys go to the slot's owner when the files were planned", m, m.Node))
	}
	res, err := writeFiles(ctx, repo, set, files, topo.SlotMap(), o, ids)
	res.Notes = append(notes, res.Notes...)
	return res, err
}

// writeFiles reads the set's shards and writes their keys into files,
// each to files[slotMap[slot]] (all to files[0] without a slot map), then
// checks the union digest and publishes the files.
func writeFiles(ctx context.Context, repo storage.Backend, set *catalog.Set, files []FileResult, slotMap []int, o restore.Options, ids []age.Identity) (*FilesResult, error) {
	start := time.Now()
	res := &FilesResult{Files: files}
	if o.Now == nil {
		o.Now = time.Now
	}
	sources, version, err := openShards(ctx, repo, set, ids)
	if err != nil {
		return res, err
	}
	outs := make([]*restore.Output, len(files))
	defer func() {
		for _, out := range outs {
			if out != nil {
				out.Abort()
			}
		}
	}()
	dgs := make([]*digest.Digest, len(files))
	for i := range files {
		if outs[i], err = restore.CreateOutput(files[i].Path, version, o.Force); err != nil {
			return res, err
		}
		if err := outs[i].W.SelectDB(0); err != nil {
			return res, err
		}
		dgs[i] = digest.New(digest.Options{})
	}
	w := &fileRouter{res: res, outs: outs, dgs: dgs, slotMap: slotMap, now: o.Now().UnixMilli(), progress: o.Progress, streamTo: -1}
	for i, s := range sources {
		if err := w.copy(ctx, s.src, i == 0, o.MaxValueBytes); err != nil {
			return res, err
		}
	}
	var sums []string
	for i := range files {
		files[i].Digest = dgs[i].Sum()
		sums = append(sums, files[i].Digest)
	}
	if res.Digest, err = digest.Union(sums...); err != nil {
		return res, err
	}
	if res.Digest != set.Digest {
		return res, &DigestError{Set: set.ID, Want: set.Digest, Got: res.Digest}
	}
	for i, out := range outs {
		outs[i] = nil
		if err := out.Commit(); err != nil {
			return res, err
		}
	}
	if w.meta > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d keys carried module key metadata (KEY_META, Redis 8.6), not copied", w.meta))
	}
	if w.moduleAux > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d module aux records were not copied", w.moduleAux))
	}
	res.Duration = time.Since(start)
	return res, nil
}

// fileRouter writes the records of the shards' snapshots into the files.
type fileRouter struct {
	res      *FilesResult
	outs     []*restore.Output
	dgs      []*digest.Digest
	slotMap  []int
	now      int64
	progress func(bytes, keys int64)

	meta, moduleAux int64
	// streamTo is the file the value being streamed goes to (-1: none).
	streamTo int
}

// copy reads one shard's snapshot to its end; functions are written into
// every file when functions is set.
func (w *fileRouter) copy(ctx context.Context, src restore.Source, functions bool, maxValue int64) error {
	rc, err := src.Open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	// A big value is copied into its file and digested as it streams,
	// never held whole.
	rd, err := rdb.NewReader(rc, rdb.Options{MaxValueBytes: maxValue, SkipValueCheck: src.Verified,
		StreamStrings: true, StreamValues: func(rec *rdb.Record) (*rdb.Visitor, error) { return w.stream(rec, src.Name) }})
	if err != nil {
		return fmt.Errorf("%s: %w", src.Name, err)
	}
	var last, keys int64
	report := func() {
		if w.progress != nil && keys > 0 {
			w.progress(rd.Offset()-last, keys)
			last, keys = rd.Offset(), 0
		}
	}
	err = rd.ForEach(ctx, func(rec *rdb.Record) error {
		switch rec.Kind {
		case rdb.RecordFunction:
			if !functions {
				return nil
			}
			w.res.Functions++
			for _, out := range w.outs {
				if err := out.W.WriteFunction(rec.FunctionCode); err != nil {
					return fmt.Errorf("%s: %w", out.Path, err)
				}
			}
		case rdb.RecordModuleAux:
			w.moduleAux++
		case rdb.RecordKey:
			return w.key(rec, src.Name, &keys, report)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", src.Name, err)
	}
	report()
	w.res.Bytes += rd.Offset()
	// Read to the end so the stored object's size and sha256 are checked.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("%s: %w", src.Name, err)
	}
	return nil
}

// file is the index of the file the key record rec goes to, by its slot.
func (w *fileRouter) file(rec *rdb.Record, name string) (int, error) {
	if rec.DB != 0 {
		return 0, fmt.Errorf("%s: key %q is in db %d: a cluster has db 0 only", name, rec.Key, rec.DB)
	}
	i := 0
	if w.slotMap != nil {
		if i = w.slotMap[cluster.Slot(rec.Key)]; i < 0 {
			return 0, fmt.Errorf("%s: key %q: slot %d is served by no node of the target", name, rec.Key, cluster.Slot(rec.Key))
		}
	}
	return i, nil
}

// stream is the Reader's StreamValues: the key's head goes into its file
// now, the value's bytes as they arrive, and its elements into the file's
// digest; key ends it.
func (w *fileRouter) stream(rec *rdb.Record, name string) (*rdb.Visitor, error) {
	w.streamTo = -1
	i, err := w.file(rec, name)
	if err != nil {
		return nil, err
	}
	v, err := w.outs[i].W.StreamKey(rec.Key, rec.Type, rec.Expire, rec.Idle, rec.Freq)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", w.res.Files[i].Path, err)
	}
	d, err := w.dgs[i].Stream(rec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	w.streamTo = i
	return rdb.Tee(v, d), nil
}

// key writes one key record into the file of its slot (a streamed value
// is there already).
func (w *fileRouter) key(rec *rdb.Record, name string, keys *int64, report func()) error {
	i, err := w.file(rec, name)
	if err != nil {
		return err
	}
	f := &w.res.Files[i]
	switch {
	case rec.Streamed && w.streamTo != i:
		return fmt.Errorf("%s: key %q: its value was streamed, but not into its file", name, rec.Key)
	case rec.Streamed:
		w.streamTo = -1
	default:
		if err := w.outs[i].W.WriteKey(rec.Key, rec.Type, rec.Value, rec.Expire, rec.Idle, rec.Freq); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	if err := w.dgs[i].Add(rec); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if rec.Meta != nil {
		w.meta++
	}
	f.Keys++
	w.res.Keys++
	if rec.Expire >= 0 && rec.Expire <= w.now {
		f.Expired++
		w.res.Expired++
	}
	if *keys++; *keys >= 512 {
		report()
	}
	return nil
}
