package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"redback/internal/catalog"
	"redback/internal/storage"
)

// Leased runs fn while holding the writer lease of the source whose
// objects are view: fn's context ends when the lease is lost, and fn
// writes through a backend that refuses writes once it is. The lease is
// released when fn returns. A lease taken over from a writer that is gone
// is logged. name only labels errors and log lines.
func Leased(ctx context.Context, log *slog.Logger, view storage.Backend, name string, fn func(context.Context, storage.Backend) error) error {
	lease, err := catalog.AcquireLease(ctx, view, catalog.NewHolderID(), catalog.DefaultLeaseTTL)
	if err != nil {
		return fmt.Errorf("source %s: %w", name, err)
	}
	if lease.TookOver != "" {
		log.Warn("took over the lease of a writer that is gone", "source", name, "holder", lease.TookOver)
	}
	renew, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	renewed := make(chan error, 1)
	go func() { renewed <- lease.Run(renew) }()
	work, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(lease.Context(), func() { cancel(context.Cause(lease.Context())) })
	ferr := fn(work, lease.Guard(view))
	unhook()
	cancel(nil)
	stopRenew()
	lerr := <-renewed
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	if rerr := lease.Release(rctx); rerr != nil && lerr == nil && !errors.Is(rerr, catalog.ErrLeaseLost) {
		log.Warn("release lease", "source", name, "err", rerr)
	}
	return errors.Join(ferr, lerr)
}
