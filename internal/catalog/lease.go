package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"redback/internal/storage"
)

// LeaseKey is the lease object of a repository: the single-writer lock
// taken by the agent (and by prune) before any write.
const LeaseKey = "lease.json"

// ErrLeaseLost is returned by (*Lease).Run when another holder took the
// lease or it expired before it could be renewed. Work done under the
// lease must stop.
var ErrLeaseLost = errors.New("repository lease lost")

// LeaseRecord is the content of lease.json.
type LeaseRecord struct {
	Format   int       `json:"format"`
	Holder   string    `json:"holder"`
	Acquired time.Time `json:"acquired"`
	Renewed  time.Time `json:"renewed"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
}

// LeaseHeldError says who holds the lease a caller wanted.
type LeaseHeldError struct {
	Location string
	Holder   string
	Expires  time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("repository %s is leased by %s until %s: another agent (or prune) is writing to it; stop it, or wait for the lease to expire",
		e.Location, e.Holder, e.Expires.UTC().Format(time.RFC3339))
}

// NewHolderID returns "hostname/pid/random", unique per process.
func NewHolderID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Lease is a held repository lease. Keep it alive with Run and give it up
// with Release.
type Lease struct {
	b      storage.Backend
	holder string
	ttl    time.Duration
	now    func() time.Time

	mu       sync.Mutex
	etag     string
	acquired time.Time
	expires  time.Time
}

// AcquireLease takes the repository lease for holder for ttl: it creates
// lease.json only if absent (conditional write), or replaces an expired or
// released lease only if it is unchanged since it was read (If-Match on its
// ETag), so two contenders cannot both win. A live lease of another holder
// gives a *LeaseHeldError. Expiry compares the writer's clock with the
// reader's: keep clocks in sync (NTP) well within ttl.
func AcquireLease(ctx context.Context, b storage.Backend, holder string, ttl time.Duration) (*Lease, error) {
	return acquireLease(ctx, b, holder, ttl, time.Now)
}

func acquireLease(ctx context.Context, b storage.Backend, holder string, ttl time.Duration, now func() time.Time) (*Lease, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("lease ttl %s must be positive", ttl)
	}
	l := &Lease{b: b, holder: holder, ttl: ttl, now: now}
	for attempt := 0; attempt < 3; attempt++ {
		t := now().UTC()
		rec := LeaseRecord{Format: FormatVersion, Holder: holder, Acquired: t, Renewed: t, Expires: t.Add(ttl)}
		data, _ := json.Marshal(rec)
		info, err := b.PutIf(ctx, LeaseKey, data, storage.Condition{IfAbsent: true})
		if err == nil {
			l.set(info.ETag, t, rec.Expires)
			return l, nil
		}
		if !errors.Is(err, storage.ErrPrecondition) {
			return nil, fmt.Errorf("acquire lease on %s: %w", b.Location(), err)
		}
		cur, etag, err := readLease(ctx, b)
		if errors.Is(err, storage.ErrNotExist) {
			continue // released and deleted in between: try again
		}
		if err != nil {
			return nil, fmt.Errorf("acquire lease on %s: %w", b.Location(), err)
		}
		if !cur.Released && cur.Expires.After(t) && cur.Holder != holder {
			return nil, &LeaseHeldError{Location: b.Location(), Holder: cur.Holder, Expires: cur.Expires}
		}
		info, err = b.PutIf(ctx, LeaseKey, data, storage.Condition{IfMatch: etag})
		if err == nil {
			l.set(info.ETag, t, rec.Expires)
			return l, nil
		}
		if !errors.Is(err, storage.ErrPrecondition) && !errors.Is(err, storage.ErrNotExist) {
			return nil, fmt.Errorf("take over expired lease on %s: %w", b.Location(), err)
		}
		// Someone else changed it first: look again.
	}
	cur, _, err := readLease(ctx, b)
	if err == nil {
		return nil, &LeaseHeldError{Location: b.Location(), Holder: cur.Holder, Expires: cur.Expires}
	}
	return nil, fmt.Errorf("acquire lease on %s: contended", b.Location())
}

// readLease returns the current lease record and the ETag it was read at.
func readLease(ctx context.Context, b storage.Backend) (*LeaseRecord, string, error) {
	info, err := b.Stat(ctx, LeaseKey)
	if err != nil {
		return nil, "", err
	}
	var rec LeaseRecord
	if err := GetJSON(ctx, b, LeaseKey, &rec); err != nil {
		return nil, "", err
	}
	// The ETag is taken before the read: if the object changed in between,
	// the conditional write that uses it fails, which is safe.
	return &rec, info.ETag, nil
}

// ReadLease returns the repository's current lease record (for status
// output); storage.ErrNotExist when there is none.
func ReadLease(ctx context.Context, b storage.Backend) (*LeaseRecord, error) {
	rec, _, err := readLease(ctx, b)
	return rec, err
}

func (l *Lease) set(etag string, acquired, expires time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.etag = etag
	if !acquired.IsZero() {
		l.acquired = acquired
	}
	l.expires = expires
}

// Holder is the holder id this lease was taken with.
func (l *Lease) Holder() string { return l.holder }

// Expires is when the lease ends unless renewed.
func (l *Lease) Expires() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expires
}

// Renew extends the lease by ttl with a write conditional on the ETag of
// the last write. ErrLeaseLost when another holder changed it.
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	etag, acquired := l.etag, l.acquired
	l.mu.Unlock()
	t := l.now().UTC()
	rec := LeaseRecord{Format: FormatVersion, Holder: l.holder, Acquired: acquired, Renewed: t, Expires: t.Add(l.ttl)}
	data, _ := json.Marshal(rec)
	info, err := l.b.PutIf(ctx, LeaseKey, data, storage.Condition{IfMatch: etag})
	if err != nil {
		if errors.Is(err, storage.ErrPrecondition) || errors.Is(err, storage.ErrNotExist) {
			return fmt.Errorf("%w: %s changed lease.json (taken over or removed)", ErrLeaseLost, l.b.Location())
		}
		return fmt.Errorf("renew lease on %s: %w", l.b.Location(), err)
	}
	l.set(info.ETag, time.Time{}, rec.Expires)
	return nil
}

// Run renews the lease every ttl/3 until ctx is done (then it returns nil;
// call Release afterwards). It returns an error wrapping ErrLeaseLost when
// another holder took the lease, or when renewals kept failing (storage
// errors) so long that the next attempt would come after expiry: the
// caller must then stop all work done under it, which an errgroup does by
// cancelling its context.
func (l *Lease) Run(ctx context.Context) error {
	every := l.ttl / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		err := l.Renew(ctx)
		switch {
		case err == nil:
			lastErr = nil
		case errors.Is(err, ErrLeaseLost):
			return err
		case ctx.Err() != nil:
			return nil
		default:
			lastErr = err
			// Stop before the lease can expire unnoticed: the next
			// attempt would come too late.
			if !l.now().Add(every).Before(l.Expires()) {
				return fmt.Errorf("%w: could not renew it before it expires: %v", ErrLeaseLost, lastErr)
			}
		}
	}
}

// Release gives the lease up: it marks lease.json released with a write
// conditional on our last ETag (so a lease already taken over is left
// alone), after which anyone may take it at once. The object stays.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	etag, acquired := l.etag, l.acquired
	l.mu.Unlock()
	t := l.now().UTC()
	rec := LeaseRecord{Format: FormatVersion, Holder: l.holder, Acquired: acquired, Renewed: t, Expires: t, Released: true}
	data, _ := json.Marshal(rec)
	if _, err := l.b.PutIf(ctx, LeaseKey, data, storage.Condition{IfMatch: etag}); err != nil {
		if errors.Is(err, storage.ErrPrecondition) || errors.Is(err, storage.ErrNotExist) {
			return fmt.Errorf("%w: %s changed lease.json before release", ErrLeaseLost, l.b.Location())
		}
		return fmt.Errorf("release lease on %s: %w", l.b.Location(), err)
	}
	return nil
}
