// Package rekey changes who can decrypt a source's encrypted objects
// (snapshots and log segments) without re-encrypting them: each object's
// age header is rebuilt around the same file key, with stanzas added for
// new recipients and the stanzas of removed recipients left out, and the
// payload is copied unchanged.
//
// Objects cannot be edited in place on an object store, so each one is
// rewritten in steps that keep it readable, and its manifest true, at every
// moment:
//
//  1. the rebuilt object is written to KEY.rekey and read back in full:
//     sha256, decryption (with the verifying identities when given, else the
//     file key), decompression to the manifest's raw size;
//  2. the manifest is pointed at KEY.rekey (its new sha256, size and
//     recipients);
//  3. KEY.rekey is copied over KEY (checked against its sha256 on the way);
//  4. the manifest is pointed back at KEY;
//  5. KEY.rekey is deleted.
//
// A run stopped anywhere leaves every manifest naming an object that
// matches it and that its recorded recipients can decrypt. A new run
// finishes objects left between steps 2 and 5, skips objects whose
// manifest already names the wanted recipients (and deletes a KEY.rekey
// left before step 2), and rekeys the rest.
package rekey

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/storage"
)

// TempSuffix ends the key of an object being rewritten.
const TempSuffix = ".rekey"

// Options say how to rekey.
type Options struct {
	// Identities decrypt the current headers (the old key).
	Identities []age.Identity
	// Add are the recipients to add (already present ones are not added
	// twice).
	Add *pack.Recipients
	// Remove are fingerprints (pack.Fingerprint) of recipients whose
	// stanzas are left out.
	Remove []string
	// Verify, when set, are identities every rewritten object must decrypt
	// with (the new key).
	Verify []age.Identity
	// DryRun reports what would be rekeyed and changes nothing.
	DryRun bool
	// Log receives progress (nil: none).
	Log *slog.Logger
	// Step, when set, is called after each step of an object's rewrite
	// ("temp", "manifest-temp", "data", "manifest", "done") with the
	// manifest key: tests stop a run there.
	Step func(step, manifest string)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Result is what a run did.
type Result struct {
	// Rekeyed are the manifest keys of the objects rewritten.
	Rekeyed []string `json:"rekeyed"`
	// Already counts encrypted objects whose manifest already named the
	// wanted recipients.
	Already int `json:"already_done"`
	// Plain counts objects stored without encryption (rekey does not
	// encrypt them).
	Plain int `json:"not_encrypted"`
	// Locked are objects under a retention lock, left as they are.
	Locked []Locked `json:"locked"`
	// Failed are objects that could not be rekeyed.
	Failed []Failure `json:"failed"`
	// BytesWritten counts the bytes of the rewritten objects (each written
	// twice: the temporary copy and the object).
	BytesWritten int64 `json:"bytes_written"`
	// Total counts the objects looked at.
	Total int `json:"objects"`
}

// Locked is an object a retention lock keeps as it is.
type Locked struct {
	Manifest string    `json:"manifest"`
	Until    time.Time `json:"locked_until"`
}

// Failure is an object that could not be rekeyed.
type Failure struct {
	Manifest string `json:"manifest"`
	Error    string `json:"error"`
}

// item is one encrypted object and the manifest that commits it.
type item struct {
	manifest string
	doc      any // *catalog.Snapshot or *catalog.Segment, written back whole
	obj      *catalog.Object
}

// Run rekeys every encrypted object of the source whose objects are b.
// Failures of single objects are in the result and in the returned error
// (joined); the run goes on with the other objects.
func Run(ctx context.Context, b storage.Backend, opts Options) (*Result, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	res := &Result{Rekeyed: []string{}, Locked: []Locked{}, Failed: []Failure{}}
	items, errs, err := list(ctx, b)
	if err != nil {
		return nil, err
	}
	for _, e := range errs {
		res.Failed = append(res.Failed, Failure{Manifest: manifestOf(e), Error: e.Error()})
	}
	res.Total = len(items) + len(errs)
	var failed []error
	failed = append(failed, errs...)
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return res, errors.Join(append(failed, err)...)
		}
		if err := one(ctx, b, opts, it, res); err != nil {
			res.Failed = append(res.Failed, Failure{Manifest: it.manifest, Error: err.Error()})
			failed = append(failed, fmt.Errorf("%s: %w", it.manifest, err))
			opts.Log.Warn("rekey failed", "manifest", it.manifest, "err", err)
			continue
		}
		if (i+1)%100 == 0 || i+1 == len(items) {
			opts.Log.Info("rekey progress", "objects", i+1, "of", len(items), "rekeyed", len(res.Rekeyed), "already_done", res.Already, "locked", len(res.Locked))
		}
	}
	return res, errors.Join(failed...)
}

func manifestOf(err error) string {
	var me *catalog.ManifestError
	if errors.As(err, &me) {
		return me.Key
	}
	return ""
}

// list returns every snapshot and segment of the source.
func list(ctx context.Context, b storage.Backend) ([]item, []error, error) {
	snaps, errs, err := catalog.ListSnapshots(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	var items []item
	for i := len(snaps) - 1; i >= 0; i-- { // oldest first
		s := snaps[i]
		items = append(items, item{manifest: catalog.SnapshotManifestKey(s.ID), doc: s, obj: &s.Object})
	}
	gens, err := catalog.ListGenerations(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	for _, g := range gens {
		segs, err := catalog.ListSegments(ctx, b, g.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, s := range segs {
			items = append(items, item{manifest: catalog.SegmentKey(g.ID, s.Start, s.End), doc: s, obj: &s.Object})
		}
	}
	return items, errs, nil
}

// wanted is the recipient list an object recorded as cur should end with:
// cur without the removed ones, then the added ones it lacks.
func wanted(cur []string, opts Options) []string {
	var out []string
	for _, fp := range cur {
		if !slices.Contains(opts.Remove, fp) {
			out = append(out, fp)
		}
	}
	if opts.Add != nil {
		for _, fp := range opts.Add.Fingerprints {
			if !slices.Contains(out, fp) {
				out = append(out, fp)
			}
		}
	}
	return out
}

func one(ctx context.Context, b storage.Backend, opts Options, it item, res *Result) error {
	obj := it.obj
	if obj.Encryption == "" {
		res.Plain++
		return nil
	}
	if obj.Encryption != pack.EncryptionAge {
		return fmt.Errorf("encryption %q is not age", obj.Encryption)
	}
	finished := false
	if strings.HasSuffix(obj.Key, TempSuffix) {
		if opts.DryRun {
			res.Rekeyed = append(res.Rekeyed, it.manifest)
			return nil
		}
		// A run stopped between steps 2 and 5: finish it.
		if err := finish(ctx, b, opts, it, res); err != nil {
			return err
		}
		finished = true
	}
	temp := obj.Key + TempSuffix
	want := wanted(obj.Recipients, opts)
	if slices.Equal(want, obj.Recipients) {
		if !finished {
			res.Already++
		}
		if opts.DryRun {
			return nil
		}
		// A copy left before its manifest named it.
		if _, err := b.Stat(ctx, temp); err == nil {
			if err := b.Delete(ctx, temp); err != nil {
				return fmt.Errorf("delete the leftover %s: %w", temp, err)
			}
		}
		return nil
	}
	if len(want) == 0 {
		return errors.New("no recipient would be left: give --encrypt-to")
	}
	if storage.Locks(b) {
		until, err := storage.LockedUntil(ctx, b, obj.Key)
		if err != nil {
			return fmt.Errorf("read the retention lock of %s: %w", obj.Key, err)
		}
		if until.After(opts.Now()) {
			res.Locked = append(res.Locked, Locked{Manifest: it.manifest, Until: until})
			opts.Log.Warn("object under a retention lock: not rekeyed", "manifest", it.manifest, "locked_until", until.UTC().Format(time.RFC3339))
			return nil
		}
	}
	if opts.DryRun {
		res.Rekeyed = append(res.Rekeyed, it.manifest)
		return nil
	}
	if err := rewrite(ctx, b, opts, it, want, res); err != nil {
		return err
	}
	return finish(ctx, b, opts, it, res)
}

// rewrite does steps 1 and 2: the rebuilt object at KEY.rekey, verified,
// and the manifest pointed at it.
func rewrite(ctx context.Context, b storage.Backend, opts Options, it item, want []string, res *Result) error {
	obj := it.obj
	temp := obj.Key + TempSuffix
	rc, err := b.Get(ctx, obj.Key, 0, -1)
	if err != nil {
		return fmt.Errorf("read %s: %w", obj.Key, err)
	}
	defer rc.Close()
	old := pack.NewCounter(nil)
	br := bufio.NewReaderSize(io.TeeReader(rc, old), 64<<10)
	h, err := readHeader(br)
	if err != nil {
		return &pack.IntegrityError{Key: obj.Key, What: err.Error()}
	}
	fileKey, err := age.DecryptHeader(h.raw, opts.Identities...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return fmt.Errorf("none of the --identity identities decrypts %s (recipients %s)", obj.Key, strings.Join(obj.Recipients, ", "))
		}
		return &pack.IntegrityError{Key: obj.Key, What: "age header: " + err.Error()}
	}
	stanzas, err := restanza(h, fileKey, obj.Recipients, want, opts)
	if err != nil {
		return err
	}
	hdr, err := header(fileKey, stanzas)
	if err != nil {
		return err
	}
	if err := checkHeader(hdr, fileKey, opts); err != nil {
		return fmt.Errorf("%s: %w", obj.Key, err)
	}

	// Step 1: header + the unchanged payload, read back in full.
	written := pack.NewCounter(nil)
	if _, err := b.Put(ctx, temp, io.TeeReader(io.MultiReader(bytes.NewReader(hdr), br), written)); err != nil {
		return fmt.Errorf("write %s: %w", temp, err)
	}
	if old.N != obj.StoredBytes || old.Sum() != obj.SHA256 {
		_ = b.Delete(ctx, temp)
		return &pack.IntegrityError{Key: obj.Key, What: fmt.Sprintf("%d bytes with sha256 %s, the manifest says %d bytes with sha256 %s", old.N, old.Sum(), obj.StoredBytes, obj.SHA256)}
	}
	res.BytesWritten += written.N
	newObj := *obj
	newObj.Key, newObj.StoredBytes, newObj.SHA256, newObj.Recipients = temp, written.N, written.Sum(), want
	if err := verifyObject(ctx, b, &newObj, fileKey, opts); err != nil {
		return err
	}
	step(opts, "temp", it.manifest)

	// Step 2: the manifest names the rewritten copy.
	*obj = newObj
	if err := catalog.PutJSON(ctx, b, it.manifest, it.doc); err != nil {
		return err
	}
	step(opts, "manifest-temp", it.manifest)
	return nil
}

// finish does steps 3 to 5 for an object whose manifest names KEY.rekey.
func finish(ctx context.Context, b storage.Backend, opts Options, it item, res *Result) error {
	obj := it.obj
	temp := obj.Key
	key := strings.TrimSuffix(temp, TempSuffix)
	rc, err := b.Get(ctx, temp, 0, -1)
	if err != nil {
		return fmt.Errorf("read %s: %w", temp, err)
	}
	n, err := b.Put(ctx, key, pack.Verify(rc, pack.Expect{Key: temp, Size: obj.StoredBytes, SHA256: obj.SHA256}))
	rc.Close()
	if err != nil {
		var ie *pack.IntegrityError
		if errors.As(err, &ie) {
			return ie
		}
		return fmt.Errorf("write %s: %w", key, err)
	}
	if n.Size != obj.StoredBytes && n.Size > 0 {
		return &pack.IntegrityError{Key: key, What: fmt.Sprintf("stored %d bytes, want %d", n.Size, obj.StoredBytes)}
	}
	res.BytesWritten += obj.StoredBytes
	step(opts, "data", it.manifest)
	obj.Key = key
	if err := catalog.PutJSON(ctx, b, it.manifest, it.doc); err != nil {
		return err
	}
	step(opts, "manifest", it.manifest)
	if err := b.Delete(ctx, temp); err != nil {
		return fmt.Errorf("delete %s: %w", temp, err)
	}
	res.Rekeyed = append(res.Rekeyed, it.manifest)
	opts.Log.Info("rekeyed", "manifest", it.manifest, "recipients", strings.Join(obj.Recipients, ","))
	step(opts, "done", it.manifest)
	return nil
}

func step(opts Options, name, manifest string) {
	if opts.Step != nil {
		opts.Step(name, manifest)
	}
}

// restanza returns the stanzas of the new header: the current ones (in
// the order of the manifest's recipients cur) but the removed, then one
// for each added recipient not there yet.
func restanza(h *parsedHeader, fileKey []byte, cur, want []string, opts Options) ([][]byte, error) {
	var out [][]byte
	removing := false
	for _, fp := range cur {
		if slices.Contains(opts.Remove, fp) {
			removing = true
		}
	}
	if removing && len(h.stanzas) != len(cur) {
		return nil, fmt.Errorf("the age header has %d stanzas for the %d recipients of the manifest: cannot tell which to remove", len(h.stanzas), len(cur))
	}
	kept := []string{}
	for i, s := range h.stanzas {
		if i < len(cur) && slices.Contains(opts.Remove, cur[i]) {
			continue
		}
		out = append(out, s)
		if i < len(cur) {
			kept = append(kept, cur[i])
		}
	}
	if opts.Add != nil {
		for i, r := range opts.Add.List {
			fp := opts.Add.Fingerprints[i]
			if slices.Contains(kept, fp) {
				continue
			}
			ss, err := r.Wrap(fileKey)
			if err != nil {
				return nil, fmt.Errorf("wrap the file key for %s: %w", fp, err)
			}
			if len(ss) != 1 {
				return nil, fmt.Errorf("recipient %s wraps into %d stanzas; rekey supports one per recipient", fp, len(ss))
			}
			m, err := marshalStanza(ss[0])
			if err != nil {
				return nil, err
			}
			out = append(out, m)
			kept = append(kept, fp)
		}
	}
	if !slices.Equal(kept, want) {
		return nil, fmt.Errorf("internal: stanzas for %v, want %v", kept, want)
	}
	return out, nil
}

// checkHeader proves a rebuilt header with age's own parser: its MAC holds
// for the file key, the verifying identities (when given) unwrap the file
// key, and no identity of a removed recipient does.
func checkHeader(hdr, fileKey []byte, opts Options) error {
	if _, err := age.DecryptHeader(hdr, age.NewInjectedFileKeyIdentity(fileKey)); err != nil {
		return fmt.Errorf("the rebuilt age header does not check: %w", err)
	}
	if len(opts.Verify) > 0 {
		k, err := age.DecryptHeader(hdr, opts.Verify...)
		if err != nil {
			return fmt.Errorf("the new identity does not decrypt the rebuilt header: %w", err)
		}
		if !bytes.Equal(k, fileKey) {
			return errors.New("the new identity unwraps another file key")
		}
	}
	for _, id := range opts.Identities {
		if fp := identityFingerprint(id); fp != "" && slices.Contains(opts.Remove, fp) {
			if _, err := age.DecryptHeader(hdr, id); err == nil {
				return fmt.Errorf("the removed recipient %s still decrypts the rebuilt header", fp)
			}
		}
	}
	return nil
}

// identityFingerprint is the fingerprint of id's recipient ("" when it
// cannot be known).
func identityFingerprint(id age.Identity) string {
	switch i := id.(type) {
	case *age.X25519Identity:
		return pack.Fingerprint(i.Recipient().String())
	case *age.HybridIdentity:
		return pack.Fingerprint(i.Recipient().String())
	}
	return ""
}

// verifyObject reads obj back in full: size and sha256, decryption (with
// the verifying identities, else the file key) and decompression to the
// recorded raw size.
func verifyObject(ctx context.Context, b storage.Backend, obj *catalog.Object, fileKey []byte, opts Options) error {
	ids := opts.Verify
	if len(ids) == 0 {
		ids = []age.Identity{age.NewInjectedFileKeyIdentity(fileKey)}
	}
	rc, err := b.Get(ctx, obj.Key, 0, -1)
	if err != nil {
		return fmt.Errorf("read back %s: %w", obj.Key, err)
	}
	defer rc.Close()
	r, err := pack.NewReader(rc, pack.Expect{Key: obj.Key, Size: obj.StoredBytes, SHA256: obj.SHA256, Encrypted: true}, ids)
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return pack.Classify(obj.Key, err)
	}
	if n != obj.RawBytes {
		return &pack.IntegrityError{Key: obj.Key, What: fmt.Sprintf("decrypts to %d raw bytes, the manifest says %d", n, obj.RawBytes)}
	}
	return nil
}

// ParseRemove turns --remove-recipient values (age1... recipients,
// recipient files, or sha256: fingerprints as manifests record them) into
// fingerprints.
func ParseRemove(specs []string) ([]string, error) {
	var out []string
	for _, s := range specs {
		if strings.HasPrefix(s, "sha256:") {
			out = append(out, s)
			continue
		}
		rs, err := pack.ParseRecipients([]string{s})
		if err != nil {
			return nil, err
		}
		if rs != nil {
			out = append(out, rs.Fingerprints...)
		}
	}
	return out, nil
}
