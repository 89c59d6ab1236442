package restore

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"testing"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/redistest"
	"redback/internal/storage/mem"
)

// TestSnapshotSource restores a stored (compressed, encrypted) snapshot and
// one whose stored bytes were damaged.
func TestSnapshotSource(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	c := src.Client()
	for i := range 500 {
		c.Set(ctx, "k"+strconv.Itoa(i), i, 0)
	}
	raw, err := os.ReadFile(saveRDB(t, ctx, src))
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pack.ParseRecipients([]string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	var stored bytes.Buffer
	pw, err := pack.NewWriter(&stored, pack.Options{Recipients: rs})
	if err != nil {
		t.Fatal(err)
	}
	pw.Write(raw)
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	b := mem.New()
	snap := &catalog.Snapshot{ID: "20261125T000000.000Z-abcdef",
		Object: catalog.Object{Key: catalog.SnapshotDataKey("20261125T000000.000Z-abcdef", true), RawBytes: int64(len(raw)),
			StoredBytes: int64(stored.Len()), SHA256: pw.Stored.Sum(), Encryption: pack.EncryptionAge},
		Census: catalog.Census{DBs: []catalog.DBCount{{DB: 0, Keys: 500}}}}
	if _, err := b.Put(ctx, snap.Object.Key, bytes.NewReader(stored.Bytes())); err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t)
	res, err := ToRedis(ctx, SnapshotSource(b, snap, []age.Identity{id}), targetURL(t, dst), Options{})
	if err != nil || res.KeysRestored != 500 {
		t.Fatalf("ToRedis: %v %+v", err, res)
	}
	compareServers2(t, ctx, src, dst)
	if _, err := ToRedis(ctx, SnapshotSource(b, snap, nil), targetURL(t, dst), Options{Conflict: ConflictReplace}); err == nil {
		t.Error("encrypted snapshot without identity: no error")
	}

	// A damaged stored object: the sha256 check fails (at the latest at the end).
	bad := bytes.Clone(stored.Bytes())
	bad[len(bad)-40] ^= 1
	b.Put(ctx, snap.Object.Key, bytes.NewReader(bad))
	_, err = ToRedis(ctx, SnapshotSource(b, snap, []age.Identity{id}), targetURL(t, dst), Options{Conflict: ConflictReplace})
	var se *DamagedSourceError
	if !errors.As(err, &se) {
		t.Fatalf("damaged object: %v, want a DamagedSourceError", err)
	}
	t.Logf("damaged object: %v", err)
	_, err = ToDir(ctx, SnapshotSource(b, snap, []age.Identity{id}), t.TempDir(), Options{})
	if !errors.As(err, &se) {
		t.Fatalf("damaged object to dir: %v, want a DamagedSourceError", err)
	}
}
