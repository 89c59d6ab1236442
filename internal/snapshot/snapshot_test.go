package snapshot

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/digest"
	"redback/internal/pack"
	"redback/internal/rdb"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/replica/replicatest"
	"redback/internal/storage"
	"redback/internal/storage/backends"
	"redback/internal/storage/mem"
	"redback/internal/storage/s3/s3test"
)

// serverURL is the parsed URL of a test server.
func serverURL(t *testing.T, s *redistest.Server) *redisurl.URL {
	t.Helper()
	u, err := redisurl.Parse(s.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// readBack unseals the stored object of snap and returns its DEBUG DIGEST and census.
func readBack(t *testing.T, b storage.Backend, snap *catalog.Snapshot, ids []age.Identity) (string, int64) {
	t.Helper()
	ctx := context.Background()
	rc, err := b.Get(ctx, snap.Object.Key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r, err := pack.NewReader(rc, pack.Expect{Key: snap.Object.Key, Size: snap.Object.StoredBytes, SHA256: snap.Object.SHA256, Encrypted: snap.Object.Encryption != ""}, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rr, err := rdb.NewReader(r, rdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := digest.New(digest.Options{})
	var keys int64
	for {
		rec, err := rr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind == rdb.RecordKey {
			keys++
			if err := d.Add(rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	return d.Sum(), keys
}

func TestTake_RoundTrip(t *testing.T) {
	src := redistest.Start(t, "--repl-diskless-sync-delay", "0")
	n := redistest.Populate(t, src, 400)
	ctx := context.Background()
	want := src.Digest(ctx)
	wantKeys := int64(n)

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pack.ParseRecipients([]string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	s3url := s3test.Start(t)
	repos := map[string]func(t *testing.T) storage.Backend{
		"file": func(t *testing.T) storage.Backend {
			b, err := backends.Open(ctx, "file://"+t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		"s3": func(t *testing.T) storage.Backend {
			b, err := backends.Open(ctx, s3url)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
	for repoName, open := range repos {
		for _, method := range []string{"sync", "bgsave"} {
			for _, encrypt := range []bool{false, true} {
				name := repoName + "/" + method
				if encrypt {
					name += "/age"
				}
				t.Run(name, func(t *testing.T) {
					b := open(t)
					defer b.Close()
					opts := Options{Backend: b, Method: method, Source: catalog.Source{Address: src.URL()}}
					var ids []age.Identity
					if encrypt {
						opts.Pack.Recipients = rs
						ids = []age.Identity{id}
					}
					var snap *catalog.Snapshot
					var err error
					if method == "sync" {
						snap, err = TakeSync(ctx, serverURL(t, src), opts, nil)
					} else {
						var f *SavedFile
						f, err = TakeBGSave(ctx, src.Client(), BGSaveOptions{})
						if err == nil {
							snap, err = Store(ctx, f, opts)
							f.Close()
						}
					}
					if err != nil {
						t.Fatal(err)
					}
					if snap.Digest != want {
						t.Fatalf("manifest digest %s, server %s", snap.Digest, want)
					}
					if snap.Census.Keys != wantKeys {
						t.Fatalf("census %d keys, want %d", snap.Census.Keys, wantKeys)
					}
					if len(snap.Census.Functions) != 1 || snap.Census.Functions[0] != "redbacklib" {
						t.Fatalf("functions %v", snap.Census.Functions)
					}
					got, keys := readBack(t, b, snap, ids)
					if got != want || keys != wantKeys {
						t.Fatalf("stored object: digest %s keys %d, want %s %d", got, keys, want, wantKeys)
					}
					back, err := catalog.ReadSnapshot(ctx, b, snap.ID)
					if err != nil || back.Digest != want || !back.Verified {
						t.Fatalf("manifest read back: %+v %v", back, err)
					}
					if encrypt && (snap.Object.Encryption != "age" || strings.Contains(snap.Object.Recipients[0], "age1")) {
						t.Fatalf("encryption recorded as %q %v", snap.Object.Encryption, snap.Object.Recipients)
					}
					if method == "sync" && (snap.Source.ReplID == "" || len(snap.Source.ReplID) != 40) {
						t.Fatalf("sync snapshot without replid: %+v", snap.Source)
					}
				})
			}
		}
	}
}

func TestStore_CorruptRDBPublishesNothing(t *testing.T) {
	src := redistest.Start(t)
	redistest.Populate(t, src, 50)
	ctx := context.Background()
	if err := src.Client().Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(src.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0x10
	for _, tc := range []struct {
		name     string
		payload  []byte
		diskless bool
	}{
		{"bitflip-disk", bad, false},
		{"bitflip-diskless", bad, true},
		{"truncated", good[:len(good)-100], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prim := replicatest.NewPrimary(t, tc.payload, replicatest.Options{Diskless: tc.diskless})
			u, err := redisurl.Parse(prim.URL(), redisurl.Options{})
			if err != nil {
				t.Fatal(err)
			}
			b := mem.New()
			_, err = TakeSync(ctx, u, Options{Backend: b, Method: "sync"}, nil)
			var fe *rdb.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want an rdb.FormatError", err)
			}
			assertNothingVisible(t, b)
		})
	}
}

func assertNothingVisible(t *testing.T, b storage.Backend) {
	t.Helper()
	ctx := context.Background()
	snaps, _, err := catalog.ListSnapshots(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 0 {
		t.Fatalf("%d snapshots visible after a failure", len(snaps))
	}
	var data []string
	_ = b.List(ctx, catalog.SnapshotDataPrefix, func(oi storage.ObjectInfo) error { data = append(data, oi.Key); return nil })
	if len(data) != 0 {
		t.Fatalf("data objects left: %v", data)
	}
}

// failingBackend refuses every data write.
type failingBackend struct{ storage.Backend }

func (f failingBackend) Put(ctx context.Context, key string, r io.Reader) (storage.ObjectInfo, error) {
	if strings.HasPrefix(key, catalog.SnapshotDataPrefix) {
		_, _ = io.CopyN(io.Discard, r, 1000)
		return storage.ObjectInfo{}, errors.New("access denied")
	}
	return f.Backend.Put(ctx, key, r)
}

func TestStore_StorageRefusesWrites(t *testing.T) {
	src := redistest.Start(t)
	redistest.Populate(t, src, 200)
	b := failingBackend{mem.New()}
	_, err := TakeSync(context.Background(), serverURL(t, src), Options{Backend: b, Method: "sync"}, nil)
	if err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("got %v", err)
	}
	var fe *rdb.FormatError
	if errors.As(err, &fe) {
		t.Fatalf("a storage failure must not look like a corrupt RDB: %v", err)
	}
	assertNothingVisible(t, b.Backend)
}

func TestTakeSync_Refused(t *testing.T) {
	src := redistest.Start(t, "--rename-command", "PSYNC", "", "--rename-command", "SYNC", "")
	_, err := TakeSync(context.Background(), serverURL(t, src), Options{Backend: mem.New()}, nil)
	if err == nil || !strings.Contains(err.Error(), "bgsave") {
		t.Fatalf("got %v, want a refusal suggesting --method bgsave", err)
	}
}

func TestTakeBGSave_Interplay(t *testing.T) {
	ctx := context.Background()
	t.Run("during BGREWRITEAOF", func(t *testing.T) {
		s := redistest.Start(t, "--appendonly", "yes", "--rdb-key-save-delay", "0")
		redistest.Populate(t, s, 2000)
		c := s.Client()
		// Slow the rewrite child down so BGSAVE meets it.
		if err := c.ConfigSet(ctx, "rdb-key-save-delay", "200").Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.BgRewriteAOF(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = c.ConfigSet(context.Background(), "rdb-key-save-delay", "0").Err()
		}()
		f, err := TakeBGSave(ctx, c, BGSaveOptions{Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		snap, err := Store(ctx, f, Options{Backend: mem.New(), Method: "bgsave"})
		if err != nil {
			t.Fatal(err)
		}
		if snap.Digest != s.Digest(ctx) {
			t.Fatal("digest differs")
		}
		if !strings.Contains(strings.Join(f.Waited, ";"), "AOF rewrite") {
			t.Logf("note: rewrite finished before BGSAVE: %v", f.Waited)
		}
	})
	t.Run("while another BGSAVE runs", func(t *testing.T) {
		s := redistest.Start(t)
		redistest.Populate(t, s, 2000)
		c := s.Client()
		if err := c.ConfigSet(ctx, "rdb-key-save-delay", "100").Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.BgSave(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = c.ConfigSet(context.Background(), "rdb-key-save-delay", "0").Err()
		}()
		f, err := TakeBGSave(ctx, c, BGSaveOptions{Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if !strings.Contains(strings.Join(f.Waited, ";"), "already in progress") {
			t.Fatalf("did not wait for the running save: %v", f.Waited)
		}
	})
	t.Run("failing BGSAVE", func(t *testing.T) {
		// The dump path is a directory: the child's final rename fails,
		// whatever the user's privileges.
		s := redistest.Start(t)
		redistest.Populate(t, s, 10)
		if err := os.Mkdir(filepath.Join(s.Dir, "dump.rdb"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := TakeBGSave(ctx, s.Client(), BGSaveOptions{Timeout: 30 * time.Second})
		var se *SaveError
		if !errors.As(err, &se) {
			t.Fatalf("got %v, want SaveError", err)
		}
		t.Logf("reported: %v", err)
		if strings.Contains(se.Reason, "see the Redis log") {
			t.Fatalf("reason not taken from the log: %v", err)
		}
	})
}
