package rekey

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/storage"
	"redback/internal/storage/mem"
)

func recipients(t *testing.T, ids ...*age.X25519Identity) *pack.Recipients {
	t.Helper()
	var specs []string
	for _, id := range ids {
		specs = append(specs, id.Recipient().String())
	}
	rs, err := pack.ParseRecipients(specs)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func newID(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestHeader_RebuildIsByteEqual: a header rebuilt from age's own stanzas
// under its file key is the header age wrote, for 1 to 5 recipients.
func TestHeader_RebuildIsByteEqual(t *testing.T) {
	for n := 1; n <= 5; n++ {
		var rs []age.Recipient
		var ids []age.Identity
		for range n {
			id := newID(t)
			rs = append(rs, id.Recipient())
			ids = append(ids, id)
		}
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, rs...)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "payload")
		w.Close()
		h, err := readHeader(bufio.NewReader(bytes.NewReader(buf.Bytes())))
		if err != nil {
			t.Fatal(err)
		}
		if len(h.stanzas) != n {
			t.Fatalf("%d stanzas, want %d", len(h.stanzas), n)
		}
		key, err := age.DecryptHeader(h.raw, ids[n-1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := header(key, h.stanzas)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, h.raw) {
			t.Fatalf("rebuilt header differs:\n%s\nwant\n%s", got, h.raw)
		}
	}
}

// TestMarshalStanza_BodyLengths: bodies of every length around the 48-byte
// line boundary marshal as age parses them (checked through a header).
func TestMarshalStanza_BodyLengths(t *testing.T) {
	key := make([]byte, 16)
	rand.Read(key)
	for n := 0; n <= 100; n++ {
		body := make([]byte, n)
		rand.Read(body)
		s, err := marshalStanza(&age.Stanza{Type: "test", Args: []string{"a"}, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := header(key, [][]byte{s})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := age.DecryptHeader(hdr, age.NewInjectedFileKeyIdentity(key)); err != nil {
			t.Fatalf("body of %d bytes: %v\n%s", n, err, hdr)
		}
	}
}

// putSnapshot stores a sealed snapshot (a manifest and its object) of raw.
func putSnapshot(t *testing.T, b *mem.Backend, raw []byte, rs *pack.Recipients) *catalog.Snapshot {
	t.Helper()
	var buf bytes.Buffer
	w, err := pack.NewWriter(&buf, pack.Options{Recipients: rs})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(raw)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	id := catalog.NewSnapshotID(now)
	s := &catalog.Snapshot{Format: 1, ID: id, StartTime: now, EndTime: now, Method: "sync", Verified: true,
		Object: catalog.Object{Key: catalog.SnapshotDataKey(id, rs != nil), RawBytes: int64(len(raw)), StoredBytes: int64(buf.Len()),
			SHA256: w.Stored.Sum(), Compression: pack.CompressionZstd}}
	if rs != nil {
		s.Object.Encryption, s.Object.Recipients = pack.EncryptionAge, rs.Fingerprints
	}
	ctx := context.Background()
	if _, err := b.Put(ctx, s.Object.Key, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if err := catalog.PutJSON(ctx, b, catalog.SnapshotManifestKey(id), s); err != nil {
		t.Fatal(err)
	}
	return s
}

// readSnapshot unseals snapshot id with ids.
func readSnapshot(b *mem.Backend, id string, ids ...age.Identity) ([]byte, error) {
	ctx := context.Background()
	s, err := catalog.ReadSnapshot(ctx, b, id)
	if err != nil {
		return nil, err
	}
	rc, err := b.Get(ctx, s.Object.Key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r, err := pack.NewReader(rc, pack.Expect{Key: s.Object.Key, Size: s.Object.StoredBytes, SHA256: s.Object.SHA256, Encrypted: true}, ids)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// TestRun_StopAtEveryStep stops a rekey from A to B (removing A) after
// each step of an object's rewrite, checks the repository is readable at
// that moment (by A or B, whichever its manifest names), and re-runs to the
// end: B reads every snapshot, A none.
func TestRun_StopAtEveryStep(t *testing.T) {
	a, bID := newID(t), newID(t)
	for _, stopAt := range []string{"temp", "manifest-temp", "data", "manifest", "done"} {
		t.Run(stopAt, func(t *testing.T) {
			b := mem.New()
			var ids []string
			raws := map[string][]byte{}
			for i := range 3 {
				raw := bytes.Repeat([]byte(fmt.Sprintf("snapshot %d ", i)), 1000+i)
				s := putSnapshot(t, b, raw, recipients(t, a))
				ids = append(ids, s.ID)
				raws[s.ID] = raw
				time.Sleep(2 * time.Millisecond) // distinct ids in time order
			}
			putSnapshot(t, b, []byte("plain"), nil)
			opts := Options{Identities: []age.Identity{a}, Add: recipients(t, bID), Remove: recipients(t, a).Fingerprints, Verify: []age.Identity{bID}}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := 0
			o := opts
			o.Step = func(step, manifest string) {
				if step == stopAt && strings.Contains(manifest, ids[1]) {
					stopped++
					cancel()
					panic(errStop)
				}
			}
			func() {
				defer func() {
					if r := recover(); r != errStop {
						panic(r)
					}
				}()
				Run(ctx, b, o)
			}()
			if stopped != 1 {
				t.Fatalf("stopped %d times", stopped)
			}
			// Every snapshot reads with A or B at this moment.
			for _, id := range ids {
				got, err := readSnapshot(b, id, a, bID)
				if err != nil || !bytes.Equal(got, raws[id]) {
					t.Fatalf("snapshot %s after a stop at %s: %v", id, stopAt, err)
				}
			}
			res, err := Run(context.Background(), b, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Plain != 1 || len(res.Rekeyed)+res.Already != 3 || len(res.Failed) != 0 {
				t.Fatalf("result %+v", res)
			}
			for _, id := range ids {
				got, err := readSnapshot(b, id, bID)
				if err != nil || !bytes.Equal(got, raws[id]) {
					t.Fatalf("snapshot %s with B: %v", id, err)
				}
				if _, err := readSnapshot(b, id, a); err == nil {
					t.Fatalf("snapshot %s still decrypts with A", id)
				}
				s, _ := catalog.ReadSnapshot(context.Background(), b, id)
				if s.Object.Key != catalog.SnapshotDataKey(id, true) || len(s.Object.Recipients) != 1 || s.Object.Recipients[0] != pack.Fingerprint(bID.Recipient().String()) {
					t.Fatalf("manifest object %+v", s.Object)
				}
			}
			// Nothing left over, and a third run has nothing to do.
			b.List(context.Background(), "", func(oi storage.ObjectInfo) error {
				if strings.HasSuffix(oi.Key, TempSuffix) {
					t.Errorf("leftover %s", oi.Key)
				}
				return nil
			})
			res, err = Run(context.Background(), b, opts)
			if err != nil || res.Already != 3 || len(res.Rekeyed) != 0 {
				t.Fatalf("third run: %+v, %v", res, err)
			}
		})
	}
}

var errStop = fmt.Errorf("stop")

// TestRun_AddKeepsOthers adds B to objects encrypted to A and C: all three
// decrypt afterwards; then removing C leaves A and B.
func TestRun_AddKeepsOthers(t *testing.T) {
	a, bID, c := newID(t), newID(t), newID(t)
	m := mem.New()
	s := putSnapshot(t, m, []byte("data data data"), recipients(t, a, c))
	if _, err := Run(context.Background(), m, Options{Identities: []age.Identity{a}, Add: recipients(t, bID)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []age.Identity{a, bID, c} {
		if _, err := readSnapshot(m, s.ID, id); err != nil {
			t.Fatal(err)
		}
	}
	// C's stanza goes though only A's identity is given.
	if _, err := Run(context.Background(), m, Options{Identities: []age.Identity{a}, Remove: recipients(t, c).Fingerprints}); err != nil {
		t.Fatal(err)
	}
	if _, err := readSnapshot(m, s.ID, c); err == nil {
		t.Fatal("C still decrypts")
	}
	for _, id := range []age.Identity{a, bID} {
		if _, err := readSnapshot(m, s.ID, id); err != nil {
			t.Fatal(err)
		}
	}
	// The wrong identity fails, naming no key.
	_, err := Run(context.Background(), m, Options{Identities: []age.Identity{c}, Add: recipients(t, c)})
	if err == nil || !strings.Contains(err.Error(), "none of the --identity identities") {
		t.Fatalf("err = %v", err)
	}
}

// TestRun_DamagedObject: an object whose bytes differ from its manifest is
// not rekeyed (a verification failure) and stays as it was.
func TestRun_DamagedObject(t *testing.T) {
	a, bID := newID(t), newID(t)
	m := mem.New()
	s := putSnapshot(t, m, bytes.Repeat([]byte("x"), 5000), recipients(t, a))
	rc, _ := m.Get(context.Background(), s.Object.Key, 0, -1)
	data, _ := io.ReadAll(rc)
	rc.Close()
	data[len(data)-1] ^= 1
	m.Put(context.Background(), s.Object.Key, bytes.NewReader(data))
	_, err := Run(context.Background(), m, Options{Identities: []age.Identity{a}, Add: recipients(t, bID)})
	if !pack.VerificationFailed(err) {
		t.Fatalf("err = %v, want a verification failure", err)
	}
	got, _ := catalog.ReadSnapshot(context.Background(), m, s.ID)
	if got.Object.SHA256 != s.Object.SHA256 || got.Object.Key != s.Object.Key {
		t.Fatalf("manifest changed: %+v", got.Object)
	}
	if _, err := m.Stat(context.Background(), s.Object.Key+TempSuffix); err == nil {
		t.Fatal("temporary copy left")
	}
}
