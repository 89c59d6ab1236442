package verify

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/digest"
	"redback/internal/pack"
	"redback/internal/rdb"
	"redback/internal/storage"
)

// CheckOptions tune CheckSnapshot.
type CheckOptions struct {
	Identities []age.Identity
	Progress   func(bytes int64) // stored bytes read; may be nil
	Now        func() time.Time  // time.Now if nil
}

// hashing counts and hashes the stored bytes as they are read.
type hashing struct {
	ctx      context.Context // stops the read (and a drain) when it ends
	r        io.Reader
	h        hash.Hash
	n        int64
	err      error // first read error other than io.EOF
	progress func(int64)
}

func (h *hashing) Read(p []byte) (int, error) {
	if err := h.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := h.r.Read(p)
	h.n += int64(n)
	h.h.Write(p[:n])
	if h.progress != nil && n > 0 {
		h.progress(int64(n))
	}
	if err != nil && err != io.EOF && h.err == nil {
		h.err = err
	}
	return n, err
}

// counting counts raw bytes.
type counting struct {
	r io.Reader
	n int64
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// CheckSnapshot streams the data object of snap and compares everything it
// can recompute with the manifest: stored size and sha256, decryption and
// decompression, a complete RDB parse, the CRC-64 status, the raw size, the
// key census and the digest. It returns every finding, the keys parsed and
// the stored bytes read; its error is non-nil only when ctx ended.
func CheckSnapshot(ctx context.Context, b storage.Backend, snap *catalog.Snapshot, o CheckOptions) (fs []Finding, keys, stored int64, err error) {
	obj := snap.Object.Key
	add := func(sev Severity, code, format string, args ...any) {
		fs = append(fs, Finding{Snapshot: snap.ID, Object: obj, Severity: sev, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	rc, err := b.Get(ctx, obj, 0, -1)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, 0, ctx.Err()
		}
		if errors.Is(err, storage.ErrNotExist) {
			add(Error, CodeMissing, "data object is missing (the manifest of snapshot %s refers to it)", snap.ID)
		} else {
			add(Error, CodeIO, "cannot read: %v", err)
		}
		return fs, 0, 0, nil
	}
	defer rc.Close()
	mark := len(fs) // findings about the content go after those about the stored bytes
	hr := &hashing{ctx: ctx, r: rc, h: sha256.New(), progress: o.Progress}

	// drain reads the rest of the stored bytes so that size and sha256 can
	// be judged even after the content failed to decode.
	drain := func() {
		_, _ = io.Copy(io.Discard, hr)
	}
	finish := func() ([]Finding, int64, int64, error) {
		if ctx.Err() != nil {
			return nil, 0, 0, ctx.Err()
		}
		content := slices.Clone(fs[mark:])
		fs = fs[:mark]
		if hr.err != nil {
			if ie, ok := pack.Classify(obj, hr.err).(*pack.IntegrityError); ok {
				// the store found the damage (its own checksum)
				add(Error, CodeSHA256, "stored bytes are damaged: %s (at stored byte %d)", ie.What, hr.n)
			} else {
				add(Error, CodeIO, "read stopped at stored byte %d: %v", hr.n, hr.err)
			}
			return append(fs, content...), keys, hr.n, nil
		}
		sizeOK := hr.n == snap.Object.StoredBytes
		if !sizeOK {
			what := "longer"
			if hr.n < snap.Object.StoredBytes {
				what = "shorter (truncated?)"
			}
			add(Error, CodeSize, "stored size is %d bytes, manifest says %d: %s than written", hr.n, snap.Object.StoredBytes, what)
		}
		if got := hex.EncodeToString(hr.h.Sum(nil)); snap.Object.SHA256 != "" && got != snap.Object.SHA256 {
			add(Error, CodeSHA256, "stored bytes changed since the backup was written: sha256 %s, manifest says %s", got, snap.Object.SHA256)
		} else if snap.Object.SHA256 == "" {
			add(Warning, CodeSHA256, "manifest records no sha256; stored bytes cannot be checked")
		}
		return append(fs, content...), keys, hr.n, nil
	}

	encrypted := snap.Object.Encryption != ""
	if encrypted && snap.Object.Encryption != pack.EncryptionAge {
		add(Error, CodeManifest, "unknown encryption %q", snap.Object.Encryption)
		drain()
		return finish()
	}
	if encrypted && len(o.Identities) == 0 {
		add(Error, CodeIdentity, "object is encrypted (age, recipients %s): give --identity FILE to check its content; size and sha256 were still checked",
			strings.Join(snap.Object.Recipients, ", "))
		drain()
		return finish()
	}
	if c := snap.Object.Compression; c != "" && c != pack.CompressionZstd {
		add(Error, CodeManifest, "unknown compression %q", c)
		drain()
		return finish()
	}
	ur, err := pack.NewReader(hr, pack.Expect{Key: obj, Size: -1, Encrypted: encrypted}, o.Identities)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, 0, ctx.Err()
		}
		code := CodeDecode
		if strings.Contains(err.Error(), "identities") {
			code = CodeIdentity
		}
		if hr.err == nil {
			add(Error, code, "%v", err)
		}
		drain()
		return finish()
	}
	defer ur.Close()
	raw := &counting{r: ur}
	got, perr := parse(ctx, raw, now().UnixMilli())
	if got != nil {
		keys = got.keys
	}
	switch {
	case ctx.Err() != nil:
		return nil, 0, 0, ctx.Err()
	case hr.err != nil:
		// A read failure of the backend, reported by finish.
	case perr != nil:
		var ie *pack.IntegrityError
		var fe *rdb.FormatError
		switch {
		case errors.As(perr, &ie):
			what := "decompress"
			if encrypted {
				what = "decrypt or decompress"
			}
			add(Error, CodeDecode, "cannot %s after %d raw bytes: %s", what, raw.n, ie.What)
		case errors.As(perr, &fe):
			add(Error, CodeFormat, "RDB damaged: %v", fe)
		default:
			add(Error, CodeDecode, "%v", perr)
		}
	default:
		compare(snap, got, raw.n, add)
	}
	drain()
	return finish()
}

// parsed is what parse recomputes.
type parsed struct {
	version  int
	keys     int64
	checksum rdb.ChecksumStatus
	census   catalog.Census
	digest   string
}

// parse reads a whole RDB from r, then reads r to its end. The digest
// decodes (and so fully checks) every value, so the reader only walks each
// value's outline; it runs on digest.Workers() goroutines beside the
// reader (one check then keeps the cores busy by itself: see
// checkSnapshots).
func parse(ctx context.Context, r *counting, nowMs int64) (*parsed, error) {
	dg := digest.New(digest.Options{})
	rd, err := rdb.NewReader(r, rdb.Options{SkipValueCheck: true, StreamValues: dg.Stream, StreamStrings: true}) // a big value streamed into dg, never held whole
	if err != nil {
		return nil, err
	}
	cnt := catalog.NewCounter(nowMs)
	p := &parsed{version: rd.Version()}
	scan := func(ctx context.Context, add func(*rdb.Record) error) error {
		return rd.ForEach(ctx, func(rec *rdb.Record) error {
			cnt.Add(rec)
			if rec.Kind != rdb.RecordKey {
				return nil
			}
			p.keys++
			return add(rec)
		})
	}
	if w := digest.Workers(); w > 1 {
		err = digest.Parallel(ctx, dg, digest.Options{}, w, scan)
	} else {
		err = scan(ctx, dg.Add)
	}
	if err != nil {
		return p, err
	}
	p.checksum = rd.Checksum()
	p.census = cnt.Census()
	p.digest = dg.Sum()
	// The reader reads ahead: everything after its offset must be nothing.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return p, err
	}
	if extra := r.n - rd.Offset(); extra > 0 {
		return p, &rdb.FormatError{Offset: rd.Offset(), Err: fmt.Errorf("%d unexpected bytes after the RDB's end", extra)}
	}
	return p, nil
}

// compare reports differences between the manifest and what was recomputed.
func compare(snap *catalog.Snapshot, got *parsed, rawBytes int64, add func(Severity, string, string, ...any)) {
	if snap.Object.RawBytes != 0 && rawBytes != snap.Object.RawBytes {
		add(Error, CodeSize, "RDB is %d bytes after decompression, manifest says %d", rawBytes, snap.Object.RawBytes)
	}
	if snap.RDBVersion != 0 && got.version != snap.RDBVersion {
		add(Error, CodeManifest, "RDB version %d, manifest says %d", got.version, snap.RDBVersion)
	}
	if snap.Checksum != "" && got.checksum.String() != snap.Checksum {
		add(Error, CodeChecksum, "CRC-64 trailer %q, manifest says %q", got.checksum, snap.Checksum)
	}
	for _, d := range CensusDiff(snap.Census, got.census) {
		add(Error, CodeCensus, "census: %s", d)
	}
	if snap.Digest != "" && got.digest != snap.Digest {
		add(Error, CodeDigest, "digest of the data is %s, manifest says %s", got.digest, snap.Digest)
	}
}

// CensusDiff lists the differences between two censuses (keys, expires,
// types per db and in total, functions, modules), want being the manifest's.
// AlreadyExpired depends on the clock and is not compared.
func CensusDiff(want, got catalog.Census) []string {
	var out []string
	if want.Keys != got.Keys {
		out = append(out, fmt.Sprintf("%d keys, manifest says %d", got.Keys, want.Keys))
	}
	if want.Expires != got.Expires {
		out = append(out, fmt.Sprintf("%d keys with a TTL, manifest says %d", got.Expires, want.Expires))
	}
	out = append(out, typesDiff("", want.Types, got.Types)...)
	wdb := map[int]catalog.DBCount{}
	for _, d := range want.DBs {
		wdb[d.DB] = d
	}
	gdb := map[int]catalog.DBCount{}
	for _, d := range got.DBs {
		gdb[d.DB] = d
	}
	for _, id := range unionKeys(wdb, gdb) {
		w, g := wdb[id], gdb[id]
		if w.Keys != g.Keys {
			out = append(out, fmt.Sprintf("db %d has %d keys, manifest says %d", id, g.Keys, w.Keys))
		}
		if w.Expires != g.Expires {
			out = append(out, fmt.Sprintf("db %d has %d keys with a TTL, manifest says %d", id, g.Expires, w.Expires))
		}
		if w.Keys == g.Keys {
			out = append(out, typesDiff(fmt.Sprintf("db %d: ", id), w.Types, g.Types)...)
		}
	}
	wf, gf := slices.Clone(want.Functions), slices.Clone(got.Functions)
	slices.Sort(wf)
	slices.Sort(gf)
	if !slices.Equal(wf, gf) {
		out = append(out, fmt.Sprintf("function libraries [%s], manifest says [%s]", strings.Join(gf, " "), strings.Join(wf, " ")))
	}
	out = append(out, typesDiff("module ", want.Modules, got.Modules)...)
	return out
}

// unionKeys returns the keys of a and b, sorted, each once.
func unionKeys[K cmp.Ordered, V any](a, b map[K]V) []K {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func typesDiff(prefix string, want, got map[string]int64) []string {
	var out []string
	for _, n := range unionKeys(want, got) {
		if want[n] != got[n] {
			out = append(out, fmt.Sprintf("%s%d keys of type %s, manifest says %d", prefix, got[n], n, want[n]))
		}
	}
	return out
}

// findOrphans reports data objects under data/snapshots/ that no manifest
// refers to. ids are the snapshot manifests present.
func findOrphans(ctx context.Context, b storage.Backend, ids []string) ([]Finding, error) {
	have := make(map[string]bool, len(ids))
	for _, id := range ids {
		have[id] = true
	}
	var fs []Finding
	err := b.List(ctx, catalog.SnapshotDataPrefix, func(oi storage.ObjectInfo) error {
		name := strings.TrimPrefix(oi.Key, catalog.SnapshotDataPrefix)
		id := name
		for _, suf := range []string{".rdb.zst.age", ".rdb.zst"} {
			if s, ok := strings.CutSuffix(name, suf); ok {
				id = s
				break
			}
		}
		if have[id] {
			return nil
		}
		fs = append(fs, Finding{Object: oi.Key, Severity: Info, Code: CodeOrphan,
			Message: fmt.Sprintf("data object without a manifest (%d bytes), left by an interrupted snapshot or prune; no reader uses it", oi.Size)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", catalog.SnapshotDataPrefix, b.Location(), err)
	}
	return fs, nil
}
