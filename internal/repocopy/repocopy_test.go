package repocopy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"redback/internal/repocopy"
	"redback/internal/storage"
	"redback/internal/storage/mem"
)

func put(t *testing.T, b storage.Backend, key string, p []byte) {
	t.Helper()
	if _, err := b.Put(t.Context(), key, bytes.NewReader(p)); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, b storage.Backend, key string) []byte {
	t.Helper()
	rc, err := b.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	p, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// repo writes a small repository in the format-1 layout: a marker, n
// snapshots (one a day from t0), a generation with two segments, a lease
// and a pin. It returns the snapshot data keys.
func repo(t *testing.T, b storage.Backend, n int, t0 time.Time) []string {
	t.Helper()
	put(t, b, "redback.json", []byte(`{"format": 1, "tool": "redback"}`))
	put(t, b, "lease.json", []byte(`{"format": 1, "holder": "h/1/x"}`))
	put(t, b, "pins/p1.json", []byte(`{"format": 1, "snapshot": "s0"}`))
	var keys []string
	obj := func(key string, p []byte) string {
		put(t, b, key, p)
		h := sha256.Sum256(p)
		return fmt.Sprintf(`{"key": %q, "stored_bytes": %d, "sha256": %q}`, key, len(p), hex.EncodeToString(h[:]))
	}
	for i := range n {
		id := fmt.Sprintf("s%d", i)
		key := "data/snapshots/" + id + ".rdb.zst"
		o := obj(key, bytes.Repeat([]byte{byte('a' + i)}, 1000+i))
		end := t0.Add(time.Duration(i) * 24 * time.Hour).UTC().Format(time.RFC3339Nano)
		put(t, b, "snapshots/"+id+".json", fmt.Appendf(nil, `{"format": 1, "id": %q, "end_time": %q, "object": %s}`, id, end, o))
		keys = append(keys, key)
	}
	for i, seg := range []string{"0000000000000000-0000000000000010", "0000000000000010-0000000000000020"} {
		o := obj("data/gens/g1/"+seg+".aof.zst", []byte(strings.Repeat("x", 100+i)))
		put(t, b, "gens/g1/segs/"+seg+".json", fmt.Appendf(nil, `{"format": 1, "last_ms": %d, "object": %s}`, t0.Add(time.Duration(i)*time.Hour).UnixMilli(), o))
	}
	put(t, b, "gens/g1.json", []byte(`{"format": 1, "id": "g1", "base_snapshot": "s0"}`))
	return keys
}

func keys(t *testing.T, b storage.Backend) []string {
	t.Helper()
	var out []string
	if err := b.List(t.Context(), "", func(oi storage.ObjectInfo) error { out = append(out, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// consistent checks that every manifest on b has its data on b.
func consistent(t *testing.T, b storage.Backend) {
	t.Helper()
	have := map[string]bool{}
	for _, k := range keys(t, b) {
		have[k] = true
	}
	for _, k := range keys(t, b) {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		p := get(t, b, k)
		if i := bytes.Index(p, []byte(`"key": "`)); i >= 0 {
			rest := p[i+8:]
			dk := string(rest[:bytes.IndexByte(rest, '"')])
			if !have[dk] {
				t.Errorf("target holds manifest %s without its data %s", k, dk)
			}
		}
	}
}

func TestCopy(t *testing.T) {
	src, dst := mem.New(), mem.New()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	repo(t, src, 3, t0)
	res, err := repocopy.Copy(t.Context(), src, dst, repocopy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"data/gens/g1/0000000000000000-0000000000000010.aof.zst", "data/gens/g1/0000000000000010-0000000000000020.aof.zst",
		"data/snapshots/s0.rdb.zst", "data/snapshots/s1.rdb.zst", "data/snapshots/s2.rdb.zst",
		"gens/g1.json", "gens/g1/segs/0000000000000000-0000000000000010.json", "gens/g1/segs/0000000000000010-0000000000000020.json",
		"redback.json", "snapshots/s0.json", "snapshots/s1.json", "snapshots/s2.json",
	}
	if got := keys(t, dst); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("target keys:\n%q\nwant (no lease, no pins):\n%q", got, want)
	}
	if res.Copied != len(want) || res.Verified != 5 || res.Unreferenced != 0 || res.Present != 0 {
		t.Errorf("result %+v", res)
	}
	if !res.Newest.Equal(t0.Add(48 * time.Hour)) {
		t.Errorf("newest %v, want %v", res.Newest, t0.Add(48*time.Hour))
	}
	for _, k := range want {
		if !bytes.Equal(get(t, src, k), get(t, dst, k)) {
			t.Errorf("%s differs", k)
		}
	}

	// Incremental: nothing new, nothing copied; a new snapshot and a
	// rewritten generation manifest are.
	res, err = repocopy.Copy(t.Context(), src, dst, repocopy.Options{})
	if err != nil || res.Copied != 0 || res.Present != len(want) {
		t.Fatalf("second copy: %+v, %v", res, err)
	}
	put(t, src, "gens/g1.json", []byte(`{"format": 1, "id": "g1", "base_snapshot": "s0", "ended": true}`))
	put(t, src, "data/snapshots/new.rdb.zst", []byte("new"))
	h := sha256.Sum256([]byte("new"))
	put(t, src, "snapshots/new.json", fmt.Appendf(nil, `{"end_time": "2026-12-01T00:00:00Z", "object": {"key": "data/snapshots/new.rdb.zst", "stored_bytes": 3, "sha256": %q}}`, hex.EncodeToString(h[:])))
	res, err = repocopy.Copy(t.Context(), src, dst, repocopy.Options{})
	if err != nil || res.Copied != 3 {
		t.Fatalf("third copy: %+v, %v", res, err)
	}
	if !bytes.Contains(get(t, dst, "gens/g1.json"), []byte(`"ended": true`)) {
		t.Error("the rewritten generation manifest was not copied")
	}
}

func TestCopy_Since(t *testing.T) {
	src, dst := mem.New(), mem.New()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	data := repo(t, src, 3, t0)
	res, err := repocopy.Copy(t.Context(), src, dst, repocopy.Options{Since: t0.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(keys(t, dst), " ")
	if strings.Contains(got, data[0]) || strings.Contains(got, "snapshots/s0.json") || !strings.Contains(got, data[1]) || !strings.Contains(got, "gens/g1.json") {
		t.Errorf("--since copied %s", got)
	}
	if res.SkippedSince != 3 { // s0 and both segments (t0, t0+1h)
		t.Errorf("skipped %d, want 3", res.SkippedSince)
	}
}

func TestCopy_DryRun(t *testing.T) {
	src, dst := mem.New(), mem.New()
	repo(t, src, 2, time.Now())
	res, err := repocopy.Copy(t.Context(), src, dst, repocopy.Options{DryRun: true})
	if err != nil || res.Copied != 10 {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	if got := keys(t, dst); len(got) != 0 {
		t.Errorf("dry run wrote %q", got)
	}
}

// A source object whose bytes changed is not copied, nor its manifest;
// everything else is, and the error means exit 3.
func TestCopy_Damage(t *testing.T) {
	src, dst := mem.New(), mem.New()
	data := repo(t, src, 3, time.Now())
	p := get(t, src, data[1])
	p[10] ^= 0xff
	put(t, src, data[1], p)
	res, err := repocopy.Copy(t.Context(), src, dst, repocopy.Options{})
	var de *repocopy.DamageError
	if !errors.As(err, &de) || len(de.Keys) != 1 || de.Keys[0] != data[1] {
		t.Fatalf("error %v, want a DamageError naming %s", err, data[1])
	}
	var v interface{ VerificationFailed() bool }
	if !errors.As(err, &v) || !v.VerificationFailed() {
		t.Error("the damage error does not mean 'verification failed'")
	}
	if len(res.Held) != 1 || res.Held[0] != "snapshots/s1.json" {
		t.Errorf("held %q, want [snapshots/s1.json]", res.Held)
	}
	have := strings.Join(keys(t, dst), " ")
	if strings.Contains(have, data[1]) || strings.Contains(have, "snapshots/s1.json") || !strings.Contains(have, "snapshots/s2.json") {
		t.Errorf("target: %s", have)
	}
	consistent(t, dst)
}

// A copy stopped after a few objects leaves a consistent target, and the
// next run completes it without copying anything twice.
func TestCopy_Resume(t *testing.T) {
	src, dst := mem.New(), mem.New()
	repo(t, src, 4, time.Now())
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	_, err := repocopy.Copy(ctx, src, dst, repocopy.Options{Concurrency: 1, AfterObject: func(string) {
		if n++; n == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped copy: %v, want context.Canceled", err)
	}
	first := keys(t, dst)
	if len(first) < 3 || len(first) >= 14 {
		t.Fatalf("after the stop the target has %d objects: %q", len(first), first)
	}
	consistent(t, dst)
	res, err := repocopy.Copy(t.Context(), src, dst, repocopy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Copied+res.Present != 14 || res.Present != len(first) {
		t.Errorf("resumed copy: %+v (target had %d)", res, len(first))
	}
	consistent(t, dst)
}

// Format 2: a source's manifests name their data relative to the source's
// root (src/<name>/); the copy still verifies every object against them.
func TestCopy_SourceRoots(t *testing.T) {
	src, dst := mem.New(), mem.New()
	repo(t, storage.Scope(src, "src/a/"), 2, time.Now())
	repo(t, src, 1, time.Now()) // the root source at the top level
	res, err := repocopy.Copy(t.Context(), src, dst, repocopy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verified != 4+3 || res.Unreferenced != 0 {
		t.Errorf("result %+v: want 7 data objects verified, none unreferenced", res)
	}
	only := func(k string) bool { return strings.HasPrefix(k, "src/a/") || k == "redback.json" }
	dst2 := mem.New()
	if res, err := repocopy.Copy(t.Context(), src, dst2, repocopy.Options{Include: only}); err != nil || res.Verified != 4 {
		t.Fatalf("copy of one source: %+v, %v", res, err)
	}
	for _, k := range keys(t, dst2) {
		if !only(k) {
			t.Errorf("copy of one source holds %s", k)
		}
	}
}
