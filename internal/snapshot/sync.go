package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"redback/internal/catalog"
	"redback/internal/redisurl"
	"redback/internal/replica"
)

// TakeSync receives an RDB over the replication protocol (REPLCONF rdb-only,
// PSYNC ? -1) from the server at u and stores it with Store. The server's
// disk is not touched when it syncs disklessly.
func TakeSync(ctx context.Context, u *redisurl.URL, opts Options, log *slog.Logger) (*catalog.Snapshot, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	conn, err := replica.Dial(ctx, u, replica.Config{RDBOnly: true, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("connect to %s as a replica: %w", u.Redacted(), err)
	}
	defer conn.Close()
	res, err := conn.Sync(ctx, replica.Position{})
	if err != nil {
		if errors.Is(err, replica.ErrReplicationRefused) {
			return nil, fmt.Errorf("%w (try --method bgsave on the Redis host)", err)
		}
		return nil, fmt.Errorf("sync from %s: %w", u.Redacted(), err)
	}
	if !res.Full {
		return nil, fmt.Errorf("sync from %s: expected a full resync, got +CONTINUE", u.Redacted())
	}
	if res.WaitedBeforePayload >= time.Second {
		log.Info(replica.DelayHint(ctx, u, res.WaitedBeforePayload), "keepalives", res.Keepalives)
	}
	if res.Size > 0 && opts.Progress != nil {
		opts.Progress.SetTotal(res.Size)
	}
	opts.Source.ReplID = res.Position.ReplID
	opts.Source.Offset = res.Position.Offset
	return Store(ctx, res.RDB, opts)
}
