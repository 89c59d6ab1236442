package catalog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"redback/internal/storage"
	"redback/internal/storage/mem"
)

func TestValidSourceName(t *testing.T) {
	for name, ok := range map[string]bool{
		"alpha": true, "cache-a": true, "10.0.0.5-6379": true, "A_b.c": true,
		"": false, "-a": false, ".a": false, "a/b": false, "..": false, "a b": false, "é": false,
		strings.Repeat("a", 64): true, strings.Repeat("a", 65): false,
	} {
		if err := ValidSourceName(name); (err == nil) != ok {
			t.Errorf("%q: err %v, want ok=%v", name, err, ok)
		}
	}
}

func TestNameFromAddress(t *testing.T) {
	for addr, want := range map[string]string{
		"redis://10.0.0.5:6379":                  "10.0.0.5-6379",
		"redis://default:xxxxx@127.0.0.1:6380/0": "127.0.0.1-6380",
		"rediss://cache.example:6390":            "cache.example-6390",
		"redis://[::1]:6379":                     "1-6379",
		"redis://host":                           "host-6379",
		"unix:///run/redis/redis.sock":           "unix-redis.sock",
		"aof:/var/lib/redis/appendonlydir":       "aof-redis-appendonlydir",
		"":                                       "default",
	} {
		if got := NameFromAddress(addr); got != want {
			t.Errorf("%q: got %q, want %q", addr, got, want)
		}
		if ValidSourceName(NameFromAddress(addr)) != nil {
			t.Errorf("%q: derived name %q is not valid", addr, NameFromAddress(addr))
		}
	}
}

func putSnapshot(t *testing.T, b storage.Backend, addr string) {
	t.Helper()
	id := NewSnapshotID(time.Now())
	s := Snapshot{Format: 1, ID: id, EndTime: time.Now(), Source: Source{Address: addr},
		Object: Object{Key: SnapshotDataKey(id, false)}, Verified: true}
	if err := PutJSON(t.Context(), b, SnapshotManifestKey(id), s); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRepository_Missing(t *testing.T) {
	_, err := OpenRepository(t.Context(), mem.New())
	var nr *NoRepositoryError
	if !errors.As(err, &nr) || !errors.Is(err, ErrNoRepository) || !strings.Contains(err.Error(), "no redback repository at mem://") {
		t.Fatalf("empty store: %v", err)
	}
}

// TestInitSource_Isolated: two sources of one repository keep their objects
// apart, and the repository lists both.
func TestInitSource_Isolated(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	a, err := InitSource(ctx, b, "alpha", "redis://127.0.0.1:6379")
	if err != nil {
		t.Fatal(err)
	}
	be, err := InitSource(ctx, b, "beta", "redis://127.0.0.1:6380")
	if err != nil {
		t.Fatal(err)
	}
	putSnapshot(t, a.Backend(b), "redis://127.0.0.1:6379")
	putSnapshot(t, be.Backend(b), "redis://127.0.0.1:6380")
	putSnapshot(t, be.Backend(b), "redis://127.0.0.1:6380")
	r, err := OpenRepository(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Format != 2 || strings.Join(r.Names(), ",") != "alpha,beta" {
		t.Fatalf("repository: format %d, sources %v", r.Format, r.Names())
	}
	for ref, want := range map[SourceRef]int{a: 1, be: 2} {
		snaps, _, err := ListSnapshots(ctx, ref.Backend(b))
		if err != nil || len(snaps) != want {
			t.Fatalf("source %s: %d snapshots (%v), want %d", ref.Name, len(snaps), err, want)
		}
	}
	// A repository with a marker and no source yet is empty, not missing.
	empty := mem.New()
	if _, err := InitSource(ctx, empty, "x", ""); err != nil {
		t.Fatal(err)
	}
	if err := empty.Delete(ctx, SourceRecordKey("x")); err != nil {
		t.Fatal(err)
	}
	if r, err := OpenRepository(ctx, empty); err != nil || len(r.Sources) != 0 {
		t.Fatalf("empty repository: %v %v", r, err)
	}
}

// TestInitSource_UpgradesFormat1: the top-level history of a format-1
// repository becomes one source, named after its server, or after the
// writer when it is the same server; the upgrade happens once.
func TestInitSource_UpgradesFormat1(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		writer, addr string
		root         string
	}{
		{"alpha", "redis://127.0.0.1:6379", "alpha"},
		{"beta", "redis://127.0.0.1:6380", "127.0.0.1-6379"},
	} {
		b := mem.New()
		if err := PutJSON(ctx, b, MarkerKey, map[string]any{"format": 1, "tool": "redback"}); err != nil {
			t.Fatal(err)
		}
		putSnapshot(t, b, "redis://default:xxxxx@127.0.0.1:6379/0")
		r, err := OpenRepository(ctx, b)
		if err != nil || r.Format != 1 || len(r.Sources) != 1 || r.Sources[0].Name != "127.0.0.1-6379" || r.Sources[0].Root != "" {
			t.Fatalf("format 1: %+v %v", r, err)
		}
		ref, err := InitSource(ctx, b, tc.writer, tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		again, err := InitSource(ctx, b, tc.writer, tc.addr)
		if err != nil || again != ref {
			t.Fatalf("second InitSource: %+v %v, want %+v", again, err, ref)
		}
		r, err = OpenRepository(ctx, b)
		if err != nil || r.Format != 2 {
			t.Fatalf("after upgrade: %+v %v", r, err)
		}
		root, ok := r.Source(tc.root)
		if !ok || root.Root != "" {
			t.Fatalf("writer %s: root source %q missing from %v", tc.writer, tc.root, r.Sources)
		}
		if snaps, _, _ := ListSnapshots(ctx, root.Backend(b)); len(snaps) != 1 {
			t.Fatalf("root source lost its history: %d snapshots", len(snaps))
		}
		if w, ok := r.Source(tc.writer); !ok || w != ref {
			t.Fatalf("writer source %+v not listed in %v", ref, r.Sources)
		}
	}
}
