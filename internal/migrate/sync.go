package migrate

import (
	"context"
	"errors"
	"io"
	"time"

	"redback/internal/redisurl"
	"redback/internal/replica"
	"redback/internal/respconn"
	"redback/internal/restore"
)

// Methods of reading the source (Options.Method).
const (
	// MethodDump reads keys with SCAN and pipelined DUMP/PEXPIRETIME
	// batches: cheap for a subset (--match) of a large source, works where
	// replication is refused, but costs the source about 5 µs of CPU per
	// key, which bounds the copy rate.
	MethodDump = "dump"
	// MethodSync reads the source's RDB over the replication protocol
	// (full sync, rdb-only, like `redback snapshot`): one consistent point
	// in time, serialized by a forked child, every key streamed (filters
	// apply on the client). The source's repl-diskless-sync-delay (5 s by
	// default) is waited before the first byte.
	MethodSync = "sync"
)

// runSync copies from via a full sync, through restore.ToRedis.
func runSync(ctx context.Context, from, to *redisurl.URL, opts Options, res *Result, dbs []int) error {
	var conn *replica.Conn
	var waited time.Duration
	opened := false
	src := restore.Source{
		Name: "server " + from.Redacted() + " (full sync)",
		Size: -1,
		DBs:  dbs,
		Open: func(ctx context.Context) (io.ReadCloser, error) {
			if opened {
				return nil, errors.New("the full sync of the source can be read only once")
			}
			opened = true
			c, err := replica.Dial(ctx, from, replica.Config{RDBOnly: true})
			if err != nil {
				return nil, &respconn.ServerError{Role: respconn.RoleSource, Addr: from.Redacted(), Msg: "connect as a replica", Err: err}
			}
			r, err := c.Sync(ctx, replica.Position{})
			if err != nil {
				c.Close()
				if errors.Is(err, replica.ErrReplicationRefused) {
					return nil, &respconn.ServerError{Role: respconn.RoleSource, Addr: from.Redacted(), Msg: "the source refuses replication: use --method dump", Err: err}
				}
				return nil, &respconn.ServerError{Role: respconn.RoleSource, Addr: from.Redacted(), Msg: "full sync", Err: err}
			}
			if !r.Full {
				c.Close()
				return nil, &respconn.ServerError{Role: respconn.RoleSource, Addr: from.Redacted(), Msg: "expected a full resync, got +CONTINUE"}
			}
			conn, waited = c, r.WaitedBeforePayload
			return readCloser{r.RDB, c}, nil
		},
	}
	ro := restore.Options{Filter: opts.Filter, Conflict: opts.Conflict, Parallel: opts.Parallel, Timeout: opts.Timeout, Progress: opts.Progress, Now: opts.Now}
	rres, err := restore.ToRedis(ctx, src, to, ro)
	if conn != nil {
		conn.Close()
	}
	res.Restore = rres
	if rres != nil {
		res.KeysScanned = rres.KeysRestored + rres.KeysSkipped + rres.KeysExpired + rres.KeysFailed
		if waited >= time.Second {
			rres.Notes = append(rres.Notes, replica.DelayHint(ctx, from, waited))
		}
	}
	return err
}

type readCloser struct {
	io.Reader
	c *replica.Conn
}

func (r readCloser) Close() error { return r.c.Close() }
