package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"redback/internal/storage"
	"redback/internal/storage/mem"
	"redback/internal/storage/storagetest"
)

func TestScope_Conformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return storage.Scope(mem.New(), "src/a/") })
}

func TestGuard_Conformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return storage.Guard(mem.New(), context.Background(), func() error { return nil })
	})
}

// TestScope_Isolated: two scopes of one store never see each other's
// objects, whatever keys they use.
func TestScope_Isolated(t *testing.T) {
	ctx := t.Context()
	base := mem.New()
	a, b := storage.Scope(base, "src/a/"), storage.Scope(base, "src/ab/")
	for _, k := range []string{"snapshots/1.json", "lease.json", "x"} {
		if _, err := a.Put(ctx, k, strings.NewReader("a")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Put(ctx, "x", strings.NewReader("b")); err != nil {
		t.Fatal(err)
	}
	var seen []string
	if err := b.List(ctx, "", func(oi storage.ObjectInfo) error { seen = append(seen, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "x" {
		t.Fatalf("scope b lists %v, want [x]", seen)
	}
	if _, err := b.Stat(ctx, "lease.json"); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("scope b sees a's lease: %v", err)
	}
	for _, k := range []string{"../a/x", "/x", ""} {
		if _, err := b.Put(ctx, k, strings.NewReader("evil")); !errors.Is(err, storage.ErrInvalidKey) {
			t.Fatalf("put %q: %v, want ErrInvalidKey", k, err)
		}
	}
	var all []string
	_ = base.List(ctx, "", func(oi storage.ObjectInfo) error { all = append(all, oi.Key); return nil })
	if strings.Join(all, " ") != "src/a/lease.json src/a/snapshots/1.json src/a/x src/ab/x" {
		t.Fatalf("base holds %v", all)
	}
}

// TestGuard_FenceAndCheck: writes fail once check fails, and an operation
// under a context that is never cancelled still ends with the fence.
func TestGuard_FenceAndCheck(t *testing.T) {
	ctx := t.Context()
	fence, lose := context.WithCancelCause(context.Background())
	lost := errors.New("lease lost")
	var checkErr error
	g := storage.Guard(mem.New(), fence, func() error { return checkErr })
	if _, err := g.Put(ctx, "k", bytes.NewReader([]byte("v"))); err != nil {
		t.Fatal(err)
	}
	checkErr = lost
	if _, err := g.Put(ctx, "k2", bytes.NewReader([]byte("v"))); !errors.Is(err, lost) {
		t.Fatalf("put after check failed: %v", err)
	}
	if err := g.Delete(ctx, "k"); !errors.Is(err, lost) {
		t.Fatalf("delete after check failed: %v", err)
	}
	checkErr = nil
	// An upload under a context that is never cancelled: only the fence ends it.
	w := storage.Guard(waitingBackend{mem.New()}, fence, func() error { return nil })
	done := make(chan error, 1)
	go func() {
		_, err := w.Put(context.WithoutCancel(ctx), "k3", strings.NewReader("v"))
		done <- err
	}()
	lose(lost)
	if err := <-done; !errors.Is(err, lost) {
		t.Fatalf("put when the fence ended: %v, want the fence's cause", err)
	}
}

// waitingBackend's Put waits for its context (at most 10 s, then succeeds).
type waitingBackend struct{ storage.Backend }

func (waitingBackend) Put(ctx context.Context, key string, r io.Reader) (storage.ObjectInfo, error) {
	select {
	case <-ctx.Done():
		return storage.ObjectInfo{}, context.Cause(ctx)
	case <-time.After(10 * time.Second):
		return storage.ObjectInfo{Key: key}, nil
	}
}
