package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/catalog"
	"redback/internal/redisurl"
	"redback/internal/sentinel"
	"redback/internal/snapshot"
)

// SnapshotParams is what TakeSnapshot needs besides the source.
type SnapshotParams struct {
	// Method is "sync" (the replication protocol, the default) or
	// "bgsave" (BGSAVE and the file, on the Redis host).
	Method string
	// PreferReplica reads a healthy replica of a Sentinel-managed set.
	PreferReplica bool
	// Store says where and how the snapshot is stored; its Source and
	// Method are filled in here.
	Store snapshot.Options
}

// TakeSnapshot takes one snapshot of u (a server, or a Sentinel-managed
// set resolved to one of its nodes) and stores it: the one code path of
// `redback snapshot` and the agent's schedule. The caller holds the
// source's lease (see Leased). With method bgsave on a server whose file
// is not on this host, the error wraps snapshot.ErrNotLocal.
func TakeSnapshot(ctx context.Context, log *slog.Logger, u *redisurl.URL, p SnapshotParams) (*catalog.Snapshot, error) {
	if p.Store.Start.IsZero() {
		p.Store.Start = time.Now()
	}
	set := u
	u, err := sentinel.Resolve(ctx, set, sentinel.Options{PreferReplica: p.PreferReplica})
	if err != nil {
		return nil, err
	}
	src, err := SourceInfo(ctx, u)
	if err != nil {
		return nil, err
	}
	if u != set {
		src.Address, src.Node = set.Redacted(), u.Redacted()
		log.Info("snapshot of a Sentinel-managed set", "set", set.Redacted(), "node", u.Redacted(), "role", src.Role)
	}
	p.Store.Source = src
	p.Store.Method = p.Method
	if p.Method != "bgsave" {
		return snapshot.TakeSync(ctx, u, p.Store, log)
	}
	c := redis.NewClient(u.GoRedisOptions())
	defer c.Close()
	f, err := snapshot.TakeBGSave(ctx, c, snapshot.BGSaveOptions{})
	if err != nil {
		return nil, fmt.Errorf("--method bgsave reads the RDB file on the Redis host, but %s: %w", u.Redacted(), err)
	}
	defer f.Close()
	for _, w := range f.Waited {
		log.Info(w)
	}
	p.Store.Progress.SetTotal(f.Size)
	return snapshot.Store(ctx, f, p.Store)
}

// SourceInfo records who the server at u is (no secrets): its address,
// run id, version and role. A server that refuses INFO (renamed on
// managed services) gives the address alone; a failed connection or
// authentication is an error.
func SourceInfo(ctx context.Context, u *redisurl.URL) (catalog.Source, error) {
	src := catalog.Source{Address: u.Redacted()}
	c := redis.NewClient(u.GoRedisOptions())
	defer c.Close()
	txt, err := c.Info(ctx, "server", "replication").Result()
	var rerr redis.Error
	if errors.As(err, &rerr) && !strings.HasPrefix(rerr.Error(), "NOAUTH") && !strings.HasPrefix(rerr.Error(), "WRONGPASS") {
		return src, nil
	}
	if err != nil {
		return src, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	for _, line := range strings.Split(txt, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "run_id":
			src.RunID = v
		case "redis_version":
			src.RedisVersion = v
		case "role":
			src.Role = v
		}
	}
	return src, nil
}
