package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/redistest"
	"redback/internal/repocopy"
	"redback/internal/storage"
	"redback/internal/storage/azure/azuretest"
	"redback/internal/storage/backends"
	"redback/internal/storage/gcs/gcstest"
	"redback/internal/storage/s3/s3test"
	"redback/internal/storage/storagetest"
)

// store is a repository on an emulator the test started, with the
// emulator's data directory (for damage at rest).
type store struct {
	url, dir string
}

func startStore(t *testing.T, kind string) store {
	t.Helper()
	switch kind {
	case "gs":
		s := gcstest.StartServer(t)
		s.SetEnv(t)
		return store{s.URL("redis/cache-a"), s.Root}
	case "azblob":
		s := azuretest.StartServer(t)
		s.SetEnv(t)
		return store{s.URL("redis/cache-a"), s.Dir}
	case "s3":
		s := s3test.StartServer(t)
		s3test.SetEnv(t, s.AccessKey, s.SecretKey)
		return store{s.URL("redis/cache-a"), s.Root}
	}
	t.Fatalf("unknown store %s", kind)
	return store{}
}

func openStore(t *testing.T, url string) storage.Backend {
	t.Helper()
	b, err := backends.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// damageSnapshot flips a byte of the newest snapshot's data object in the
// emulator's own files.
func damageSnapshot(t *testing.T, st store) string {
	t.Helper()
	b := catalog.NamedSource("cache-a").Backend(openStore(t, st.url))
	snaps, _, err := catalog.ListSnapshots(t.Context(), b)
	if err != nil || len(snaps) == 0 {
		t.Fatalf("list snapshots: %d, %v", len(snaps), err)
	}
	key := snaps[0].Object.Key
	rc, err := b.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || len(p) < 200 {
		t.Fatalf("read %s: %d bytes, %v", key, len(p), err)
	}
	if n := storagetest.DamageAtRest(t, st.dir, p[len(p)/2:len(p)/2+64]); n == 0 {
		t.Fatalf("the bytes of %s were not found under %s", key, st.dir)
	}
	return key
}

// Snapshot → restore digest-equal through each store; damage at rest in
// the store's own files → verify exits 3.
func TestStores_SnapshotRestoreVerify(t *testing.T) {
	for _, kind := range []string{"gs", "azblob"} {
		t.Run(kind, func(t *testing.T) {
			ctx := t.Context()
			st := startStore(t, kind)
			src := redistest.Start(t)
			redistest.Populate(t, src, 300)
			want := src.Digest(ctx)
			if code, _, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", st.url, "--name", "cache-a"); code != ExitOK {
				t.Fatalf("snapshot: exit %d\n%s", code, errs)
			}
			dst := redistest.Start(t)
			if code, out, errs := runCLI(t, "restore", "--repo", st.url, "--latest", "--to-redis", dst.URL()); code != ExitOK {
				t.Fatalf("restore: exit %d\n%s\n%s", code, out, errs)
			}
			if got := dst.Digest(ctx); got != want {
				t.Fatalf("restored digest %s, want %s", got, want)
			}
			if code, out, errs := runCLI(t, "verify", "--repo", st.url); code != ExitOK {
				t.Fatalf("verify: exit %d\n%s\n%s", code, out, errs)
			}
			key := damageSnapshot(t, st)
			code, out, errs := runCLI(t, "verify", "--repo", st.url)
			if code != ExitVerify || !strings.Contains(out+errs, key) {
				t.Fatalf("verify after damage to %s: exit %d, want 3 naming it\n%s\n%s", key, code, out, errs)
			}
			t.Logf("verify of the damaged object:\n%s", out)
		})
	}
}

// ship → FLUSHALL → copy S3 → GCS → restore --before-command FLUSHALL from
// the copy: digest-equal to the source just before the FLUSHALL, like a
// restore from the original.
func TestStores_CopyS3ToGCS_PITR(t *testing.T) {
	ctx := t.Context()
	s3 := startStore(t, "s3")
	gs := startStore(t, "gs")
	src := redistest.Start(t)
	redistest.Populate(t, src, 100)
	sctx, cancel := context.WithCancel(ctx)
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(sctx, []string{"ship", "--source", src.URL(), "--repo", s3.url, "--name", "cache-a", "--interval", "100ms", "--ack", "durable"},
			Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	}()
	stopShip := func() {
		cancel()
		if code := <-done; code != ExitOK {
			t.Fatalf("ship: exit %d\n%s", code, errb.String())
		}
	}
	b := openStore(t, s3.url)
	for i := 0; ; i++ {
		var gens []*catalog.Generation
		if repo, err := catalog.OpenRepository(ctx, b); err == nil {
			if ref, ok := repo.Source("cache-a"); ok {
				gens, _ = catalog.ListGenerations(ctx, ref.Backend(b))
			}
		}
		if len(gens) == 1 {
			break
		}
		if i == 600 {
			stopShip()
			t.Fatalf("no generation after 60 s; ship stderr:\n%s", errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := src.Client()
	for _, k := range []string{"a", "b", "c"} {
		c.Set(ctx, "after:"+k, k, 0)
	}
	want := src.Digest(ctx)
	c.FlushAll(ctx)
	c.Set(ctx, "after-flush", "x", 0)
	if n, err := c.Do(ctx, "WAIT", 1, 30000).Int(); err != nil || n != 1 {
		stopShip()
		t.Fatalf("WAIT = %d, %v", n, err)
	}
	stopShip()

	code, cout, cerr := runCLI(t, "copy", "--from", s3.url, "--to", gs.url)
	if code != ExitOK {
		t.Fatalf("copy: exit %d\n%s\n%s", code, cout, cerr)
	}
	t.Log(cout)
	for _, repo := range []string{gs.url, s3.url} {
		dst := redistest.Start(t)
		if code, rout, rerr := runCLI(t, "restore", "--repo", repo, "--before-command", "FLUSHALL", "--to-redis", dst.URL()); code != ExitOK {
			t.Fatalf("restore from %s: exit %d\n%s\n%s", repo, code, rout, rerr)
		}
		if got := dst.Digest(ctx); got != want {
			t.Errorf("restore --before-command FLUSHALL from %s: digest %s, want %s", repo, got, want)
		}
	}
	// Nothing new: the second copy writes nothing.
	if code, cout, _ := runCLI(t, "copy", "--from", s3.url, "--to", gs.url, "--json"); code != ExitOK || !strings.Contains(cout, `"copied": 0`) {
		t.Errorf("second copy: exit %d\n%s", code, cout)
	}
}

// A copy stopped halfway leaves a consistent target (every manifest's
// data is there) and the next run completes it; the copy restores
// digest-equal. Damage in the source stops only what it touches: exit 3.
func TestStores_CopyResumeAndDamage(t *testing.T) {
	ctx := t.Context()
	az := startStore(t, "azblob")
	src := redistest.Start(t)
	from := "file://" + t.TempDir()
	var want string
	redistest.Populate(t, src, 50)
	for i := range 3 {
		src.Client().Set(ctx, fmt.Sprintf("round:%d", i), i, 0)
		want = src.Digest(ctx)
		if code, _, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", from, "--name", "cache-a"); code != ExitOK {
			t.Fatalf("snapshot: exit %d\n%s", code, errs)
		}
	}
	fb, tb := openStore(t, from), openStore(t, az.url)
	cctx, cancel := context.WithCancel(ctx)
	n := 0
	_, err := repocopy.Copy(cctx, fb, tb, repocopy.Options{Concurrency: 1, AfterObject: func(string) {
		if n++; n == 3 { // the marker and two data objects
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped copy: %v", err)
	}
	_ = tb.List(ctx, "", func(oi storage.ObjectInfo) error {
		if strings.Contains(oi.Key, "snapshots/") && strings.HasSuffix(oi.Key, ".json") {
			t.Errorf("after the stop the copy holds the manifest %s", oi.Key)
		}
		return nil
	})
	code, out, errs := runCLI(t, "copy", "--from", from, "--to", az.url)
	if code != ExitOK || !strings.Contains(out, "3 already there") {
		t.Fatalf("resumed copy: exit %d\n%s\n%s", code, out, errs)
	}
	dst := redistest.Start(t)
	if code, out, errs := runCLI(t, "restore", "--repo", az.url, "--latest", "--to-redis", dst.URL()); code != ExitOK {
		t.Fatalf("restore from the copy: exit %d\n%s\n%s", code, out, errs)
	}
	if got := dst.Digest(ctx); got != want {
		t.Fatalf("restored from the copy: digest %s, want %s", got, want)
	}

	// A damaged source object: the rest is copied, exit 3 names it.
	for i := range 200 {
		src.Client().Set(ctx, fmt.Sprintf("more:%d", i), strings.Repeat("v", i), 0)
	}
	if code, _, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", from, "--name", "cache-a"); code != ExitOK {
		t.Fatalf("snapshot: exit %d\n%s", code, errs)
	}
	key := damageSnapshot(t, store{from, strings.TrimPrefix(from, "file://")})
	code, out, errs = runCLI(t, "copy", "--from", from, "--to", az.url)
	if code != ExitVerify || !strings.Contains(out+errs, key) {
		t.Fatalf("copy of a damaged source: exit %d, want 3 naming %s\n%s\n%s", code, key, out, errs)
	}
	if _, err := catalog.NamedSource("cache-a").Backend(tb).Stat(ctx, key); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("the damaged object reached the copy: %v", err)
	}
}
