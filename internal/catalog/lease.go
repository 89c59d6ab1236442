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

// LeaseKey is the lease object of a source (a key in the source's view of
// the repository): the single-writer lock every writer of the source
// (agent, ship, snapshot, prune, keep) takes before any write.
const LeaseKey = "lease.json"

// DefaultLeaseTTL is how long a lease lasts without renewal. It is short
// so that a writer that crashed on another host blocks the next one for
// at most this long; a crashed writer on the same host is taken over at
// once (see AcquireLease).
const DefaultLeaseTTL = 15 * time.Second

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
	// BootID and ProcStart identify the holder's process beyond its pid
	// (Linux: /proc/sys/kernel/random/boot_id and the process start time
	// in clock ticks), so a reused pid is not taken for the holder.
	BootID    string `json:"boot_id,omitempty"`
	ProcStart uint64 `json:"proc_start,omitempty"`
}

// LeaseHeldError says who holds the lease a caller wanted.
type LeaseHeldError struct {
	Location string
	Holder   string
	Expires  time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("%s is leased by %s until %s: another writer (agent, ship, snapshot or prune) is writing to it; stop it, or wait for the lease to expire",
		e.Location, e.Holder, e.Expires.UTC().Format(time.RFC3339))
}

var errLeaseReleased = fmt.Errorf("%w: released", ErrLeaseLost)

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
	deadline time.Time   // local: writes stop here unless renewed
	timer    *time.Timer // ends fence at deadline

	fence context.Context
	lose  context.CancelCauseFunc

	// TookOver names the holder whose lease was taken over although it
	// had not expired, and why (its process is gone); "" otherwise.
	TookOver string
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
	l.fence, l.lose = context.WithCancelCause(context.Background())
	me := thisProcess()
	for attempt := 0; attempt < 3; attempt++ {
		t := now().UTC()
		rec := LeaseRecord{Format: FormatVersion, Holder: holder, Acquired: t, Renewed: t, Expires: t.Add(ttl),
			BootID: me.bootID, ProcStart: me.start}
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
			why := goneFromThisHost(cur, me)
			if why == "" {
				return nil, &LeaseHeldError{Location: b.Location(), Holder: cur.Holder, Expires: cur.Expires}
			}
			l.TookOver = cur.Holder + " (" + why + ")"
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

// set records a successful write of the lease made at local time sent
// (taken before the request went out): the lease is ours until
// sent+ttl-margin by our clock, whatever the request's latency.
func (l *Lease) set(etag string, acquired, expires time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.etag = etag
	if !acquired.IsZero() {
		l.acquired = acquired
	}
	l.expires = expires
	sent := expires.Add(-l.ttl)
	l.deadline = sent.Add(l.ttl - l.margin())
	wait := l.deadline.Sub(l.now())
	if l.timer == nil {
		l.timer = time.AfterFunc(wait, l.expire)
	} else {
		l.timer.Reset(wait)
	}
}

// margin is kept between the local deadline and the lease's expiry, for
// clock drift between writer and readers.
func (l *Lease) margin() time.Duration { return l.ttl / 5 }

func (l *Lease) expire() {
	l.mu.Lock()
	d := l.deadline
	l.mu.Unlock()
	if !l.now().Before(d) {
		l.lose(fmt.Errorf("%w: not renewed before %s (the process was paused, or storage unreachable)", ErrLeaseLost, d.UTC().Format(time.RFC3339)))
	}
}

// Check returns nil while the lease is ours: not lost, and its local
// deadline (expiry less a margin) not passed. Writers check it before
// every write (see Guard).
func (l *Lease) Check() error {
	if err := context.Cause(l.fence); err != nil {
		return err
	}
	l.mu.Lock()
	d := l.deadline
	l.mu.Unlock()
	if !l.now().Before(d) {
		l.expire()
		return fmt.Errorf("%w: its local deadline %s passed", ErrLeaseLost, d.UTC().Format(time.RFC3339))
	}
	return nil
}

// Done is closed when the lease is lost (taken over, not renewed in time)
// or released.
func (l *Lease) Done() <-chan struct{} { return l.fence.Done() }

// Context ends when the lease is lost or released; its cause says why.
func (l *Lease) Context() context.Context { return l.fence }

// Guard returns the view of b that writers of this lease's source use:
// every write first checks the lease (Check), and every operation is cut
// off when the lease is lost, even one started with a context that is
// never cancelled (an upload flushing at shutdown). So a writer that lost
// its lease stops writing before anyone else can hold it.
func (l *Lease) Guard(b storage.Backend) storage.Backend {
	return storage.Guard(b, l.fence, l.Check)
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
	if err := context.Cause(l.fence); err != nil {
		return err
	}
	t := l.now().UTC()
	me := thisProcess()
	rec := LeaseRecord{Format: FormatVersion, Holder: l.holder, Acquired: acquired, Renewed: t, Expires: t.Add(l.ttl),
		BootID: me.bootID, ProcStart: me.start}
	data, _ := json.Marshal(rec)
	info, err := l.b.PutIf(ctx, LeaseKey, data, storage.Condition{IfMatch: etag})
	if errors.Is(err, storage.ErrPrecondition) {
		// A renewal whose answer was lost (a connection reset after the
		// store applied it) changed the ETag under us, and its retry
		// fails on the old one: the lease is still ours if the stored
		// record is one this lease wrote. Renew on its ETag.
		if cur, curTag, ok := l.mine(ctx, acquired); ok && !cur.Released {
			info, err = l.b.PutIf(ctx, LeaseKey, data, storage.Condition{IfMatch: curTag})
		}
	}
	if err != nil {
		if errors.Is(err, storage.ErrPrecondition) || errors.Is(err, storage.ErrNotExist) {
			err := fmt.Errorf("%w: %s changed lease.json (taken over or removed)", ErrLeaseLost, l.b.Location())
			l.lose(err)
			return err
		}
		return fmt.Errorf("renew lease on %s: %w", l.b.Location(), err)
	}
	l.set(info.ETag, time.Time{}, rec.Expires)
	return nil
}

// mine reads lease.json and reports whether the record stored is one this
// lease wrote (same holder and acquisition time: holder ids are unique per
// process, acquisition times per lease), with the ETag it was read at.
func (l *Lease) mine(ctx context.Context, acquired time.Time) (*LeaseRecord, string, bool) {
	cur, etag, err := readLease(ctx, l.b)
	if err != nil || cur.Holder != l.holder || !cur.Acquired.Equal(acquired) {
		return nil, "", false
	}
	return cur, etag, true
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
		case <-l.fence.Done():
			if lastErr != nil {
				return fmt.Errorf("%w (last renewal: %v)", context.Cause(l.fence), lastErr)
			}
			return context.Cause(l.fence)
		case <-tick.C:
		}
		err := l.Renew(ctx)
		switch {
		case err == nil:
			lastErr = nil
		case errors.Is(err, ErrLeaseLost):
			return err
		case context.Cause(l.fence) != nil:
			return context.Cause(l.fence)
		case ctx.Err() != nil:
			return nil
		default:
			lastErr = err
			// Stop before the lease can expire unnoticed: the next
			// attempt would come too late.
			if !l.now().Add(every).Before(l.Expires()) {
				err := fmt.Errorf("%w: could not renew it before it expires: %v", ErrLeaseLost, lastErr)
				l.lose(err)
				return err
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
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
	l.lose(errLeaseReleased)
	t := l.now().UTC()
	rec := LeaseRecord{Format: FormatVersion, Holder: l.holder, Acquired: acquired, Renewed: t, Expires: t, Released: true}
	data, _ := json.Marshal(rec)
	if _, err := l.b.PutIf(ctx, LeaseKey, data, storage.Condition{IfMatch: etag}); err != nil {
		if errors.Is(err, storage.ErrPrecondition) {
			// A write of ours whose answer was lost (see Renew): release
			// what is stored when it is still this lease's.
			if cur, curTag, ok := l.mine(ctx, acquired); ok {
				if cur.Released {
					return nil
				}
				if _, err := l.b.PutIf(ctx, LeaseKey, data, storage.Condition{IfMatch: curTag}); err == nil {
					return nil
				}
			}
		}
		if errors.Is(err, storage.ErrPrecondition) || errors.Is(err, storage.ErrNotExist) {
			return fmt.Errorf("%w: %s changed lease.json before release", ErrLeaseLost, l.b.Location())
		}
		return fmt.Errorf("release lease on %s: %w", l.b.Location(), err)
	}
	return nil
}
