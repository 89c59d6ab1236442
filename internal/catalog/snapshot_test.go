package catalog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"redback/internal/storage/mem"
)

func TestListSnapshots_NewestFirstAndBadManifests(t *testing.T) {
	ctx := context.Background()
	b := mem.New()
	base := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ {
		at := base.Add(time.Duration(i) * time.Hour)
		id := NewSnapshotID(at)
		s := &Snapshot{Format: FormatVersion, ID: id, StartTime: at, EndTime: at, Verified: true,
			Object: Object{Key: SnapshotDataKey(id, false)}}
		if err := PutJSON(ctx, b, SnapshotManifestKey(id), s); err != nil {
			t.Fatal(err)
		}
	}
	// A damaged manifest and one from the future are reported, not fatal.
	if _, err := b.Put(ctx, SnapshotPrefix+"broken.json", strings.NewReader("{not json")); err != nil {
		t.Fatal(err)
	}
	future := &Snapshot{Format: FormatVersion + 1, ID: "future", Object: Object{Key: SnapshotDataKey("future", false)}}
	if err := PutJSON(ctx, b, SnapshotManifestKey("future"), future); err != nil {
		t.Fatal(err)
	}
	snaps, errs, err := ListSnapshots(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 3 || len(errs) != 2 {
		t.Fatalf("got %d snapshots, %d errors (%v)", len(snaps), len(errs), errs)
	}
	if !snaps[0].EndTime.After(snaps[1].EndTime) {
		t.Fatal("not newest first")
	}
	var me *ManifestError
	if !errors.As(errs[0], &me) {
		t.Fatalf("want ManifestError, got %T %v", errs[0], errs[0])
	}
	latest, err := Latest(ctx, b)
	if err != nil || latest.ID != snaps[0].ID {
		t.Fatalf("latest %v %v", latest, err)
	}
}

func TestReadSnapshot_Missing(t *testing.T) {
	b := mem.New()
	for _, id := range []string{"20260101T000000.000Z-abcdef", "../../etc/passwd", ""} {
		if _, err := ReadSnapshot(context.Background(), b, id); !errors.Is(err, ErrNoSnapshot) {
			t.Fatalf("%q: got %v", id, err)
		}
	}
	if _, err := Latest(context.Background(), b); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("latest on empty repo: %v", err)
	}
}

func TestLibraryName(t *testing.T) {
	for code, want := range map[string]string{
		"#!lua name=mylib\nredis.register_function('f', function() return 1 end)": "mylib",
		"#!lua   name=x y=z": "x",
		"no shebang":         "?",
		"name=x\n":           "?", // Redis refuses code without "#!"
		"#!name=x":           "?", // the first word is the engine
		"#!lua\nname=x":      "?", // metadata is the first line only
	} {
		if got := LibraryName([]byte(code)); got != want {
			t.Errorf("%q: got %q want %q", code, got, want)
		}
	}
}
