package repocopy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/storage"
)

// maxManifestBytes bounds the size of a JSON object read into memory.
const maxManifestBytes = 64 << 20

// Options controls a copy.
type Options struct {
	// Since, when not zero, skips manifests that record a time (a
	// snapshot's end_time, a segment's last_ms) before it, and the data
	// only they commit.
	Since time.Time
	// Include, when not nil, restricts the copy to the keys it accepts
	// (a named source of a repository).
	Include func(key string) bool
	// DryRun computes what would be copied without writing.
	DryRun bool
	// Concurrency is how many objects are copied at once; 0 means the
	// smaller of both backends' Properties().Connections, at most 4.
	Concurrency int
	// Logger receives one line per object copied (nil: discard).
	Logger *slog.Logger
	// AfterObject, when set, is called after each object is written to the
	// target (tests use it to stop a copy halfway).
	AfterObject func(key string)
}

// Result says what a copy did (or would do, for a dry run).
type Result struct {
	Objects      int      `json:"objects"`        // objects considered in the source
	Copied       int      `json:"copied"`         // objects written to the target
	CopiedBytes  int64    `json:"copied_bytes"`   // their bytes
	Present      int      `json:"present"`        // already on the target
	Verified     int      `json:"verified"`       // copied data objects whose sha256 matched a manifest
	Unreferenced int      `json:"unreferenced"`   // copied data objects no manifest names (not verified)
	SkippedSince int      `json:"skipped_since"`  // manifests older than Since
	Damaged      []string `json:"damaged"`        // source objects that failed their check
	Held         []string `json:"held,omitempty"` // manifests not copied because their data failed
	// Newest is the newest time recorded by a manifest now on the target
	// (zero when none records one): how current the copy is.
	Newest time.Time `json:"newest"`
}

// DamageError reports source objects that failed their checks; the rest
// of the repository was copied. It means "verification failed" (exit 3).
type DamageError struct{ Keys []string }

func (e *DamageError) Error() string {
	return fmt.Sprintf("%d source object(s) failed verification and were not copied (nor the manifests that commit them): %s",
		len(e.Keys), strings.Join(e.Keys, ", "))
}

// VerificationFailed reports true.
func (e *DamageError) VerificationFailed() bool { return true }

// ref is what a manifest says about a data object.
type ref struct {
	size   int64
	sha256 string
}

// manifest is a JSON object of the source and what it commits.
type manifest struct {
	info storage.ObjectInfo
	data []byte
	refs []string       // data keys it commits, sorted
	objs map[string]ref // what it says about them
	when time.Time
}

// resolve turns the data keys m names into repository keys. A manifest
// names its data relative to the root of its source (format 2: the
// manifest "src/a/snapshots/x.json" names "data/snapshots/x.rdb.zst", which
// is "src/a/data/snapshots/x.rdb.zst"): the longest directory prefix of the
// manifest's own key under which the object exists wins, else the key as
// it is.
func (m *manifest) resolve(objs map[string]storage.ObjectInfo) {
	var prefixes []string
	for k := m.info.Key; strings.Contains(k, "/"); {
		k = k[:strings.LastIndex(k, "/")]
		prefixes = append(prefixes, k+"/")
	}
	resolved := map[string]ref{}
	for k, r := range m.objs {
		full := k
		for _, p := range prefixes {
			if _, ok := objs[p+k]; ok {
				full = p + k
				break
			}
		}
		resolved[full] = r
	}
	m.objs = resolved
	m.refs = m.refs[:0]
	for k := range resolved {
		m.refs = append(m.refs, k)
	}
	slices.Sort(m.refs)
}

// local reports keys that belong to the processes using one repository.
func local(key string) bool {
	base := path.Base(key)
	return base == "lease.json" || strings.HasPrefix(key, "pins/") || strings.Contains(key, "/pins/") ||
		strings.HasPrefix(key, catalog.IndexPrefix) || strings.Contains(key, "/"+catalog.IndexPrefix) ||
		strings.HasPrefix(base, "lease-") && strings.HasSuffix(base, ".json")
}

// Copy copies src to dst as the package documentation says. It returns a
// *DamageError (with the Result filled) when source objects failed their
// checks; any other error stops the copy.
func Copy(ctx context.Context, src, dst storage.Backend, o Options) (*Result, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conc := o.Concurrency
	if conc <= 0 {
		conc = min(src.Properties().Connections, dst.Properties().Connections, 4)
	}
	srcObjs, err := listAll(ctx, src, o.Include)
	if err != nil {
		return nil, fmt.Errorf("list source %s: %w", src.Location(), err)
	}
	dstObjs, err := listAll(ctx, dst, nil)
	if err != nil {
		return nil, fmt.Errorf("list target %s: %w", dst.Location(), err)
	}
	res := &Result{Objects: len(srcObjs)}

	// Read every manifest of the source: what data each commits.
	var manifests []*manifest
	refs := map[string]ref{}
	wanted := map[string]bool{} // data keys committed by a manifest being copied
	var data []storage.ObjectInfo
	for _, oi := range sorted(srcObjs) {
		if !strings.HasSuffix(oi.Key, ".json") {
			data = append(data, oi)
			continue
		}
		m, err := readManifest(ctx, src, oi)
		if errors.Is(err, storage.ErrNotExist) {
			continue // deleted since the listing (retention)
		}
		if err != nil {
			return nil, err
		}
		if !o.Since.IsZero() && !m.when.IsZero() && m.when.Before(o.Since) {
			res.SkippedSince++
			continue
		}
		m.resolve(srcObjs)
		for k, r := range m.objs {
			wanted[k] = true
			refs[k] = r
		}
		manifests = append(manifests, m)
	}

	var mu sync.Mutex
	failed := map[string]bool{} // data keys that could not be copied
	damaged := func(key string) {
		mu.Lock()
		defer mu.Unlock()
		failed[key] = true
		res.Damaged = append(res.Damaged, key)
	}
	written := func(key string, n int64) {
		mu.Lock()
		res.Copied++
		res.CopiedBytes += n
		mu.Unlock()
		log.Info("copied", "key", key, "bytes", n)
		if o.AfterObject != nil {
			o.AfterObject(key)
		}
	}
	putJSON := func(m *manifest) error {
		if same, err := sameJSON(ctx, dst, dstObjs, m); err != nil {
			return err
		} else if same {
			res.Present++
			return nil
		}
		if o.DryRun {
			res.Copied++
			res.CopiedBytes += int64(len(m.data))
			return nil
		}
		if _, err := dst.Put(ctx, m.info.Key, bytes.NewReader(m.data)); err != nil {
			return fmt.Errorf("copy %s: %w", m.info.Key, err)
		}
		written(m.info.Key, int64(len(m.data)))
		return nil
	}

	// 1. Top-level markers.
	isMarker := func(m *manifest) bool { return !strings.Contains(m.info.Key, "/") && len(m.refs) == 0 }
	for _, m := range manifests {
		if isMarker(m) {
			if err := putJSON(m); err != nil {
				return res, err
			}
		}
	}

	// 2. Data, verified against the manifests.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for _, oi := range data {
		r, known := refs[oi.Key]
		if !o.Since.IsZero() && !wanted[oi.Key] {
			continue // only older manifests (or none) commit it
		}
		want := oi.Size
		if known && r.size >= 0 {
			want = r.size
		}
		if d, ok := dstObjs[oi.Key]; ok && d.Size == want {
			res.Present++
			continue
		}
		if known && oi.Size != r.size && r.size >= 0 {
			damaged(oi.Key) // the listing already shows the wrong size
			continue
		}
		if !known {
			res.Unreferenced++
		}
		if o.DryRun {
			res.Copied++
			res.CopiedBytes += oi.Size
			continue
		}
		g.Go(func() error {
			exp := pack.Expect{Key: oi.Key, Size: -1}
			if known {
				exp.Size, exp.SHA256 = r.size, r.sha256
			}
			n, err := copyObject(gctx, src, dst, oi.Key, exp)
			switch {
			case err == nil:
				if known {
					mu.Lock()
					res.Verified++
					mu.Unlock()
				}
				written(oi.Key, n)
				return nil
			case gctx.Err() != nil:
				return gctx.Err()
			case pack.VerificationFailed(err):
				log.Error("damaged source object not copied", "key", oi.Key, "err", err)
				damaged(oi.Key)
				return nil
			case errors.Is(err, storage.ErrNotExist):
				mu.Lock()
				failed[oi.Key] = true // deleted since the listing; its manifests are checked below
				mu.Unlock()
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return res, err
	}

	// 3 and 4. Manifests whose data is all there, then the others.
	var rest []*manifest
	for _, m := range manifests {
		if isMarker(m) {
			continue
		}
		if len(m.refs) == 0 {
			rest = append(rest, m)
			continue
		}
		if held := slices.ContainsFunc(m.refs, func(k string) bool { return failed[k] }); held {
			if _, err := src.Stat(ctx, m.info.Key); errors.Is(err, storage.ErrNotExist) {
				continue // pruned on the source meanwhile
			}
			res.Held = append(res.Held, m.info.Key)
			if !slices.ContainsFunc(m.refs, func(k string) bool { return slices.Contains(res.Damaged, k) }) {
				res.Damaged = append(res.Damaged, m.refs[0]) // its data vanished although it is still committed
			}
			continue
		}
		if err := putJSON(m); err != nil {
			return res, err
		}
		res.Newest = later(res.Newest, m.when)
	}
	for _, m := range rest {
		if err := putJSON(m); err != nil {
			return res, err
		}
		res.Newest = later(res.Newest, m.when)
	}
	slices.Sort(res.Damaged)
	res.Damaged = slices.Compact(res.Damaged)
	if len(res.Damaged) > 0 {
		return res, &DamageError{Keys: res.Damaged}
	}
	return res, nil
}

// sameJSON reports whether dst already holds m: same size and not older,
// or, when the source's is newer by the clocks (stores keep times at
// different precisions), the same bytes.
func sameJSON(ctx context.Context, dst storage.Backend, dstObjs map[string]storage.ObjectInfo, m *manifest) (bool, error) {
	d, ok := dstObjs[m.info.Key]
	if !ok || d.Size != m.info.Size {
		return false, nil
	}
	if !m.info.ModTime.After(d.ModTime) {
		return true, nil
	}
	rc, err := dst.Get(ctx, m.info.Key, 0, -1)
	if errors.Is(err, storage.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read target %s: %w", m.info.Key, err)
	}
	defer rc.Close()
	p, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
	if err != nil {
		return false, fmt.Errorf("read target %s: %w", m.info.Key, err)
	}
	return bytes.Equal(p, m.data), nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func listAll(ctx context.Context, b storage.Backend, include func(string) bool) (map[string]storage.ObjectInfo, error) {
	out := map[string]storage.ObjectInfo{}
	err := b.List(ctx, "", func(oi storage.ObjectInfo) error {
		if !local(oi.Key) && (include == nil || include(oi.Key)) {
			out[oi.Key] = oi
		}
		return nil
	})
	return out, err
}

// sorted returns the values of m sorted by key.
func sorted(m map[string]storage.ObjectInfo) []storage.ObjectInfo {
	out := make([]storage.ObjectInfo, 0, len(m))
	for _, oi := range m {
		out = append(out, oi)
	}
	slices.SortFunc(out, func(a, b storage.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func readManifest(ctx context.Context, b storage.Backend, oi storage.ObjectInfo) (*manifest, error) {
	rc, err := b.Get(ctx, oi.Key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", oi.Key, err)
	}
	defer rc.Close()
	p, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", oi.Key, err)
	}
	if len(p) > maxManifestBytes {
		return nil, fmt.Errorf("read %s: larger than %d bytes", oi.Key, maxManifestBytes)
	}
	oi.Size = int64(len(p))
	m := &manifest{info: oi, data: p}
	var doc any
	if err := json.Unmarshal(p, &doc); err != nil {
		// Not ours to judge: copy it as it is, as a manifest without refs.
		return m, nil
	}
	m.objs = map[string]ref{}
	collect(doc, m.objs)
	for k := range m.objs {
		m.refs = append(m.refs, k)
	}
	slices.Sort(m.refs)
	if top, ok := doc.(map[string]any); ok {
		m.when = recorded(top)
	}
	return m, nil
}

// collect finds every {"key": K, "sha256": H, ...} in a JSON document.
func collect(v any, refs map[string]ref) {
	switch x := v.(type) {
	case map[string]any:
		k, _ := x["key"].(string)
		h, _ := x["sha256"].(string)
		if k != "" && h != "" && storage.ValidateKey(k) == nil {
			r := ref{size: -1, sha256: h}
			if n, ok := x["stored_bytes"].(float64); ok {
				r.size = int64(n)
			}
			refs[k] = r
		}
		for _, c := range x {
			collect(c, refs)
		}
	case []any:
		for _, c := range x {
			collect(c, refs)
		}
	}
}

// recorded returns the time a manifest records: a snapshot's end_time or
// a segment's last_ms.
func recorded(top map[string]any) time.Time {
	if s, ok := top["end_time"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
	}
	if ms, ok := top["last_ms"].(float64); ok && ms > 0 {
		return time.UnixMilli(int64(ms))
	}
	return time.Time{}
}

// copyObject streams key from src to dst through a size and sha256 check
// (when exp knows them): a mismatch fails the upload, so nothing is
// visible on dst.
func copyObject(ctx context.Context, src, dst storage.Backend, key string, exp pack.Expect) (int64, error) {
	rc, err := src.Get(ctx, key, 0, -1)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	var r io.Reader = rc
	if exp.SHA256 != "" || exp.Size >= 0 {
		r = pack.Verify(rc, exp)
	}
	cr := &readErr{r: r}
	fi, err := dst.Put(ctx, key, cr)
	if cr.err != nil {
		return 0, cr.err // the source's failure, not the target's
	}
	if err != nil {
		return 0, fmt.Errorf("write %s to %s: %w", key, dst.Location(), err)
	}
	return fi.Size, nil
}

// readErr remembers the first non-EOF error of r.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
