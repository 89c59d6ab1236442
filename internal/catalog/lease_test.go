package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"redback/internal/storage"
	"redback/internal/storage/file"
	"redback/internal/storage/mem"
)

func leaseBackends(t *testing.T) map[string]storage.Backend {
	fb, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]storage.Backend{"mem": mem.New(), "file": fb}
}

// fakeNow is a settable clock.
type fakeNow struct{ t time.Time }

func (f *fakeNow) now() time.Time { return f.t }

func TestAcquireLease_SecondHolderRefused(t *testing.T) {
	for name, b := range leaseBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			clk := &fakeNow{t: time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)}
			a, err := acquireLease(ctx, b, "host-a/1/aa", time.Minute, clk.now)
			if err != nil {
				t.Fatal(err)
			}
			_, err = acquireLease(ctx, b, "host-b/2/bb", time.Minute, clk.now)
			var held *LeaseHeldError
			if !errors.As(err, &held) || held.Holder != "host-a/1/aa" {
				t.Fatalf("second holder: want LeaseHeldError naming host-a, got %v", err)
			}
			if !strings.Contains(err.Error(), "host-a/1/aa") || !strings.Contains(err.Error(), "2026-11-25T14:01:00Z") {
				t.Fatalf("message does not name holder and expiry: %v", err)
			}
			// Renewal moves the expiry; the second holder is still refused.
			clk.t = clk.t.Add(50 * time.Second)
			if err := a.Renew(ctx); err != nil {
				t.Fatal(err)
			}
			clk.t = clk.t.Add(50 * time.Second)
			if _, err := acquireLease(ctx, b, "host-b/2/bb", time.Minute, clk.now); !errors.As(err, &held) {
				t.Fatalf("after renewal: %v", err)
			}
			// Expired: b takes over, and a learns it lost the lease.
			clk.t = clk.t.Add(2 * time.Minute)
			bl, err := acquireLease(ctx, b, "host-b/2/bb", time.Minute, clk.now)
			if err != nil {
				t.Fatalf("take over expired lease: %v", err)
			}
			if err := a.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("old holder renew: want ErrLeaseLost, got %v", err)
			}
			if err := a.Release(ctx); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("old holder release must not clobber: %v", err)
			}
			// Release lets a third holder in at once.
			if err := bl.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := acquireLease(ctx, b, "host-c/3/cc", time.Minute, clk.now); err != nil {
				t.Fatalf("after release: %v", err)
			}
			rec, err := ReadLease(ctx, b)
			if err != nil || rec.Holder != "host-c/3/cc" {
				t.Fatalf("lease record %+v %v", rec, err)
			}
		})
	}
}

func TestLease_RunStopsWhenLost(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	l, err := AcquireLease(ctx, b, NewHolderID(), 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	// Someone overwrites the lease (an operator, a broken peer).
	if _, err := b.Put(ctx, LeaseKey, strings.NewReader(`{"format":1,"holder":"intruder"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Run: want ErrLeaseLost, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not notice the lost lease")
	}
}

func TestLease_RunReturnsOnCancel(t *testing.T) {
	b := mem.New()
	l, err := AcquireLease(t.Context(), b, NewHolderID(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// flakyPut fails every conditional write, as an unreachable store would.
type flakyPut struct{ storage.Backend }

func (flakyPut) PutIf(context.Context, string, []byte, storage.Condition) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, errors.New("connection reset")
}

func TestLease_RunGivesUpBeforeExpiry(t *testing.T) {
	b := mem.New()
	// Long enough that renewals are attempted (and fail) before the lease
	// expires even on a starved machine.
	l, err := AcquireLease(t.Context(), b, NewHolderID(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l.b = flakyPut{b}
	err = l.Run(t.Context())
	if !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("want ErrLeaseLost with the cause, got %v", err)
	}
}

// deadPID returns a pid that no process has (bounded search).
func deadPID(t *testing.T) int {
	t.Helper()
	for pid := 4_000_000; pid > 3_000_000; pid -= 7919 {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return pid
		}
	}
	t.Skip("no free pid found")
	return 0
}

// TestAcquireLease_DeadHolderOnThisHost: a live lease whose holder process
// is gone from this host is taken over at once, and says so; one whose
// holder still runs here, or that is another host's, is refused.
func TestAcquireLease_DeadHolderOnThisHost(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Skip("no hostname")
	}
	ctx := t.Context()
	for _, tc := range []struct {
		name, holder string
		bootID       string
		takeOver     bool
	}{
		{"dead pid", fmt.Sprintf("%s/%d/aa", host, deadPID(t)), "", true},
		{"rebooted", fmt.Sprintf("%s/%d/aa", host, os.Getppid()), "another-boot", true},
		{"alive pid", fmt.Sprintf("%s/%d/aa", host, os.Getppid()), "", false},
		{"other host", fmt.Sprintf("%s-elsewhere/%d/aa", host, deadPID(t)), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mem.New()
			now := time.Now().UTC()
			rec := LeaseRecord{Format: 1, Holder: tc.holder, Acquired: now, Renewed: now, Expires: now.Add(time.Hour), BootID: tc.bootID}
			if tc.bootID == "" {
				rec.BootID = thisProcess().bootID
			}
			if err := PutJSON(ctx, b, LeaseKey, rec); err != nil {
				t.Fatal(err)
			}
			l, err := AcquireLease(ctx, b, NewHolderID(), DefaultLeaseTTL)
			if !tc.takeOver {
				var held *LeaseHeldError
				if !errors.As(err, &held) {
					t.Fatalf("want LeaseHeldError, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("take over: %v", err)
			}
			defer l.Release(ctx)
			if !strings.Contains(l.TookOver, tc.holder) {
				t.Fatalf("TookOver = %q, want it to name %s", l.TookOver, tc.holder)
			}
		})
	}
}

// TestLease_FenceAtLocalDeadline: a lease that is not renewed stops its
// writer at its local deadline, before it expires for anyone else.
func TestLease_FenceAtLocalDeadline(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	l, err := AcquireLease(ctx, b, NewHolderID(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	g := l.Guard(b)
	if _, err := g.Put(ctx, "a", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("fence did not end at the local deadline")
	}
	if l.mu.Lock(); !l.deadline.Before(l.expires) {
		t.Fatalf("local deadline %s is not before the expiry %s", l.deadline, l.expires)
	}
	l.mu.Unlock()
	if _, err := g.Put(ctx, "b", strings.NewReader("x")); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("write after the deadline: %v, want ErrLeaseLost", err)
	}
	if err := l.Run(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Run after the deadline: %v", err)
	}
}

// lostAnswer applies the next conditional write but answers it with a
// connection reset, as when the connection breaks after the store wrote.
type lostAnswer struct {
	storage.Backend
	lose bool
}

func (b *lostAnswer) PutIf(ctx context.Context, key string, data []byte, cond storage.Condition) (storage.ObjectInfo, error) {
	info, err := b.Backend.PutIf(ctx, key, data, cond)
	if err == nil && b.lose {
		b.lose = false
		return storage.ObjectInfo{}, storage.Transient(errors.New("read: connection reset by peer"))
	}
	return info, err
}

// TestLease_LostAnswerIsNotLost: a renewal (or release) the store applied
// but whose answer was lost leaves lease.json with an ETag the lease does
// not know; the next renewal fails its condition, finds its own record and
// goes on instead of reporting the lease lost. Another holder's record is
// still a lost lease.
func TestLease_LostAnswerIsNotLost(t *testing.T) {
	for name, b := range leaseBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			lb := &lostAnswer{Backend: b}
			l, err := AcquireLease(ctx, lb, NewHolderID(), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			lb.lose = true
			if err := l.Renew(ctx); err == nil || errors.Is(err, ErrLeaseLost) {
				t.Fatalf("renewal with a lost answer: %v, want a transient error", err)
			}
			if err := l.Renew(ctx); err != nil {
				t.Fatalf("renewal after a lost answer: %v", err)
			}
			if err := l.Check(); err != nil {
				t.Fatal(err)
			}
			lb.lose = true
			if err := l.Renew(ctx); err == nil {
				t.Fatal("want the lost answer's error")
			}
			if err := l.Release(ctx); err != nil {
				t.Fatalf("release after a lost answer: %v", err)
			}
			if cur, err := ReadLease(ctx, b); err != nil || !cur.Released {
				t.Fatalf("after release: %+v %v", cur, err)
			}

			// Another holder's record is not ours: lost.
			l2, err := AcquireLease(ctx, b, NewHolderID(), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			rec := LeaseRecord{Format: FormatVersion, Holder: "other/1/x", Acquired: time.Now(), Renewed: time.Now(), Expires: time.Now().Add(time.Minute)}
			data, _ := json.Marshal(rec)
			if _, err := b.Put(ctx, LeaseKey, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if err := l2.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("renewal of a lease another holder took: %v, want ErrLeaseLost", err)
			}
		})
	}
}
