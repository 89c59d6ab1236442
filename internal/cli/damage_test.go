package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/redistest"
	"redback/internal/storage"
	"redback/internal/storage/s3/s3test"
)

// damageFixture is a repository holding one object of every kind: a kept
// snapshot, a log generation (its manifest, its base snapshot, 30+
// segments, its quiet record), a later snapshot, the manifest index packs
// the later snapshot wrote, the lease and a pin.
type damageFixture struct {
	repo   string
	digest string // the source's, at the newest durable point
	// keys of the objects (relative to the source's root, as messages
	// name them) by kind
	keys map[string]string
	// file is where the object with root-relative key k lies on disk.
	file func(k string) string
}

func buildDamageFixture(t *testing.T, repo string, onDisk func(fullKey string) string) *damageFixture {
	t.Helper()
	ctx := t.Context()
	src := redistest.Start(t)
	redistest.Populate(t, src, 2000)
	if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
	}
	kept := listRepo(t, repo).Snapshots[0].ID
	if code, out, errs := runCLI(t, "keep", "--repo", repo, kept); code != ExitOK {
		t.Fatalf("keep: exit %d\n%s%s", code, out, errs)
	}
	ship := startShip(t, src, repo, "--interval", "100ms")
	gen := ship.waitDurable()
	// At least 32 segments, so that the next writer indexes them.
	for i := 0; i < 600; i++ {
		if n := countSegments(t, repo, gen); n >= 34 {
			break
		}
		src.Client().Set(ctx, fmt.Sprintf("w%d", i), i, 0)
		src.Client().HSet(ctx, "wh", fmt.Sprint(i), i)
		time.Sleep(150 * time.Millisecond)
	}
	ship.waitDurable()
	digest := src.Digest(ctx)
	if code := ship.stop(); code != ExitOK {
		t.Fatalf("ship: exit %d\n%s", code, ship.stderr.String())
	}
	if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
	}

	// Find the objects in the store.
	b := openStore(t, repo)
	var all []string
	if err := b.List(ctx, "", func(oi storage.ObjectInfo) error { all = append(all, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(all)
	root := ""
	for _, k := range all {
		if strings.HasSuffix(k, catalog.GenerationKey(gen)) {
			root = strings.TrimSuffix(k, catalog.GenerationKey(gen))
		}
	}
	var g catalog.Generation
	if err := catalog.GetJSON(ctx, b, root+catalog.GenerationKey(gen), &g); err != nil {
		t.Fatal(err)
	}
	var base catalog.Snapshot
	if err := catalog.GetJSON(ctx, b, root+catalog.SnapshotManifestKey(g.BaseSnapshot), &base); err != nil {
		t.Fatal(err)
	}
	// A pin held by a restore that crashed.
	pinID := catalog.NewSnapshotID(time.Now())
	pin := catalog.PinKey(pinID)
	if err := catalog.PutJSON(ctx, b, root+pin, &catalog.Pin{Format: 1, ID: pinID, Snapshot: kept, Purpose: "restore", Holder: "test",
		Created: time.Now(), Expires: time.Now().Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	last := func(re string) string {
		t.Helper()
		rx := regexp.MustCompile("^" + regexp.QuoteMeta(root) + re + "$")
		found := ""
		for _, k := range all {
			if rx.MatchString(k) {
				found = strings.TrimPrefix(k, root)
			}
		}
		if found == "" {
			t.Fatalf("no object %s in %v", re, all)
		}
		return found
	}
	g0 := regexp.QuoteMeta(gen)
	f := &damageFixture{repo: repo, digest: digest, file: func(k string) string { return onDisk(root + k) }, keys: map[string]string{
		"snapshot data":       base.Object.Key,
		"snapshot manifest":   catalog.SnapshotManifestKey(base.ID),
		"segment data":        last(`data/gens/` + g0 + `/[0-9a-f-]+\.aof\.zst`),
		"segment manifest":    last(`gens/` + g0 + `/segs/[0-9a-f-]+\.json`),
		"generation manifest": catalog.GenerationKey(gen),
		"keep mark":           catalog.SnapshotManifestKey(kept),
		"index pack":          last(`index/gens/` + g0 + `/segs/[^/]+\.json\.zst`),
		"quiet record":        last(`gens/` + g0 + `/quiet\.json`),
		"lease":               catalog.LeaseKey,
		"pin":                 pin,
	}}
	return f
}

func countSegments(t *testing.T, repo, gen string) int {
	t.Helper()
	for _, w := range listRepo(t, repo).Generations {
		if w.Generation == gen {
			return int(w.Segments)
		}
	}
	return 0
}

// damage changes the object of kind at rest: JSON cut in half (flip says
// a bit flipped instead), other objects a bit flipped in the middle. It
// returns a func that puts the original bytes back.
func (f *damageFixture) damage(t *testing.T, kind string, flip bool) func() {
	t.Helper()
	p := f.file(f.keys[kind])
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	d := append([]byte(nil), orig...)
	if strings.HasSuffix(p, ".json") && !flip {
		d = d[:len(d)/2]
	} else {
		d[len(d)/2] ^= 0x01
	}
	if err := os.WriteFile(p, d, 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.WriteFile(p, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReliability_DamageEveryKind damages one object of every kind at rest
// (in the file repository's files; in the S3 server's own files under
// versitygw) and checks what each verb says:
//   - data (a snapshot's data or manifest, a segment's data or manifest,
//     the generation manifest): verify, drill and restore of the newest
//     durable point exit 3 naming the object;
//   - the keep mark of a kept snapshot (its manifest): verify and prune
//     exit 3 naming it, and nothing is deleted;
//   - an index pack: nothing changes (the index is a cache: the listing
//     is the manifests', verify and restore exit 0, digest-equal);
//   - the lease and a pin: verify (lease) and prune exit 3 naming them;
//     restores do not need them;
//   - the quiet record: verify exits 3 naming it; ship resumes without it.
func TestReliability_DamageEveryKind(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "repo")
		f := buildDamageFixture(t, "file://"+dir, func(k string) string { return filepath.Join(dir, k) })
		checkDamageEveryKind(t, f, false)
	})
	t.Run("s3", func(t *testing.T) {
		srv := s3test.StartServer(t)
		s3test.SetEnv(t, srv.AccessKey, srv.SecretKey)
		f := buildDamageFixture(t, srv.URL("r"), func(k string) string { return filepath.Join(srv.Root, srv.Bucket, "r", k) })
		checkDamageEveryKind(t, f, true)
	})
}

func checkDamageEveryKind(t *testing.T, f *damageFixture, flip bool) {
	ctx := t.Context()
	listing := listRepo(t, f.repo)
	restoreDigest := func(t *testing.T) (int, string, string, string) {
		dir := t.TempDir()
		code, out, errs := runCLI(t, "restore", "--repo", f.repo, "--at", "latest", "--to-dir", dir)
		if code != ExitOK {
			return code, out, errs, ""
		}
		var extra []string
		if _, err := os.Stat(filepath.Join(dir, "appendonlydir")); err == nil {
			extra = []string{"--appendonly", "yes"}
		}
		return code, out, errs, redistest.StartInDir(t, dir, extra...).Digest(ctx)
	}
	expect := func(t *testing.T, kind string, want int, args ...string) string {
		t.Helper()
		code, out, errs := runCLI(t, args...)
		if code != want || (want == ExitVerify && !strings.Contains(out+errs, f.keys[kind])) {
			t.Errorf("%s damaged: %s: exit %d, want %d naming %s\n%s%s", kind, args[0], code, want, f.keys[kind], out, errs)
		}
		if args[0] == "drill" && want == ExitVerify && (!strings.Contains(out, "drill FAILED") || !strings.Contains(out, "✗")) {
			t.Errorf("%s damaged: drill says no verdict:\n%s%s", kind, out, errs)
		}
		return out + errs
	}
	for _, kind := range []string{"snapshot data", "snapshot manifest", "segment data", "segment manifest", "generation manifest"} {
		t.Run(kind, func(t *testing.T) {
			defer f.damage(t, kind, flip)()
			expect(t, kind, ExitVerify, "verify", "--repo", f.repo)
			expect(t, kind, ExitVerify, "drill", "--repo", f.repo, "--latest-point")
			expect(t, kind, ExitVerify, "restore", "--repo", f.repo, "--at", "latest", "--to-dir", t.TempDir())
		})
	}
	t.Run("index pack", func(t *testing.T) {
		defer f.damage(t, "index pack", flip)()
		got, _ := json.Marshal(listRepo(t, f.repo))
		if want, _ := json.Marshal(listing); string(got) != string(want) {
			t.Errorf("index pack damaged: the listing changed:\n%s\nwant\n%s", got, want)
		}
		expect(t, "index pack", ExitOK, "verify", "--repo", f.repo)
		if code, out, errs, d := restoreDigest(t); code != ExitOK || d != f.digest {
			t.Errorf("index pack damaged: restore --at latest: exit %d, digest %s, want %s\n%s%s", code, d, f.digest, out, errs)
		}
	})
	t.Run("lease", func(t *testing.T) {
		defer f.damage(t, "lease", flip)()
		expect(t, "lease", ExitVerify, "verify", "--repo", f.repo)
		expect(t, "lease", ExitVerify, "prune", "--repo", f.repo)
		if code, out, errs, d := restoreDigest(t); code != ExitOK || d != f.digest {
			t.Errorf("lease damaged: restore --at latest: exit %d, digest %s\n%s%s", code, d, out, errs)
		}
	})
	t.Run("pin", func(t *testing.T) {
		defer f.damage(t, "pin", flip)()
		expect(t, "pin", ExitVerify, "prune", "--repo", f.repo, "--dry-run")
	})
	t.Run("quiet record", func(t *testing.T) {
		defer f.damage(t, "quiet record", flip)()
		expect(t, "quiet record", ExitVerify, "verify", "--repo", f.repo)
		if code, out, errs, d := restoreDigest(t); code != ExitOK || d != f.digest {
			t.Errorf("quiet record damaged: restore --at latest: exit %d, digest %s\n%s%s", code, d, out, errs)
		}
	})
	// Last: a prune that did not refuse would delete.
	t.Run("keep mark", func(t *testing.T) {
		defer f.damage(t, "keep mark", flip)()
		expect(t, "keep mark", ExitVerify, "verify", "--repo", f.repo)
		expect(t, "keep mark", ExitVerify, "prune", "--repo", f.repo, "--keep-hourly", "0", "--keep-daily", "0",
			"--keep-weekly", "0", "--keep-monthly", "0", "--keep-pitr", "0")
		// prune deleted nothing: the kept snapshot's data is still there.
		for _, s := range listing.Snapshots {
			if s.Keep {
				if _, err := os.Stat(f.file(s.Object.Key)); err != nil {
					t.Errorf("the kept snapshot's data after prune: %v", err)
				}
			}
		}
	})
	// Undamaged again: all clean.
	if code, out, errs := runCLI(t, "verify", "--repo", f.repo); code != ExitOK {
		t.Errorf("verify after the damage was undone: exit %d\n%s%s", code, out, errs)
	}
}
