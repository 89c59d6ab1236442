package clusterset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/rdb"
	"redback/internal/redisurl"
	"redback/internal/restore"
	"redback/internal/scratch"
	"redback/internal/storage"
)

// PointOptions tune RestorePoint.
type PointOptions struct {
	RestoreOptions
	// RedisServer is the binary that rebuilds each shard's point ("":
	// the one scratch.Choose picks for the shard's base snapshot).
	RedisServer string
	// TempDir is where the shards' points are rebuilt (os.TempDir() if "").
	TempDir string
}

// PointShard is where one shard's log was cut.
type PointShard struct {
	Source       string        `json:"source"`
	Generation   string        `json:"generation"`
	BaseSnapshot string        `json:"base_snapshot"`
	Offset       int64         `json:"offset"`
	Time         time.Time     `json:"time"`
	Match        *pitr.Command `json:"match,omitempty"`
	Notes        []string      `json:"notes,omitempty"`
}

// PointResult is what RestorePoint did.
type PointResult struct {
	*RestoreResult
	Shards []PointShard `json:"shards"`
	// SpreadSeconds is how far apart the shards' cuts are (their last
	// commands' receive times): a cluster has no global order.
	SpreadSeconds float64 `json:"spread_seconds"`
}

// ShardSources are the repository's sources that hold shards of cluster.
func ShardSources(ctx context.Context, repo storage.Backend, cluster string) ([]string, error) {
	r, err := catalog.OpenRepository(ctx, repo)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range r.Names() {
		if strings.HasPrefix(n, cluster+"-shard-") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// RestorePoint restores the cluster's shipped shards at a point in time
// into target (a cluster of any shape or a standalone server): each shard
// is cut at tg in its own log (pitr.NewPlan), rebuilt in a scratch server
// into an RDB file, and the files are routed like a set (Restore).
//
// A cluster has no global order: each shard is cut by its own log's
// receive times. For --before-command, each shard is cut just before its
// own first matching command; shards without one are cut at the time of
// the earliest match.
func RestorePoint(ctx context.Context, repo storage.Backend, cluster string, tg pitr.Target, target *redisurl.URL, o PointOptions) (*PointResult, error) {
	res := &PointResult{RestoreResult: &RestoreResult{}}
	names, err := ShardSources(ctx, repo, cluster)
	if err != nil {
		return res, err
	}
	if len(names) == 0 {
		return res, fmt.Errorf("cluster %s: the repository holds no shard source (%s-shard-N): ship the cluster first (redback ship --source redis://node --name %s)", cluster, cluster, cluster)
	}
	plans := make([]*pitr.Plan, len(names))
	var unmatched []int
	for i, n := range names {
		view := catalog.NamedSource(n).Backend(repo)
		p, err := pitr.NewPlan(ctx, view, tg, pitr.Options{Identities: o.Identities})
		if err != nil && tg.Kind == pitr.KindBeforeCommand && errors.Is(err, pitr.ErrTargetNotCovered) {
			unmatched = append(unmatched, i)
			continue
		}
		if err != nil {
			return res, fmt.Errorf("shard %s: %w", n, err)
		}
		plans[i] = p
	}
	if len(unmatched) > 0 {
		var first time.Time
		for _, p := range plans {
			if p != nil && p.Match != nil && (first.IsZero() || p.Match.Time.Before(first)) {
				first = p.Match.Time
			}
		}
		if first.IsZero() {
			return res, fmt.Errorf("%s: no shard of cluster %s has a matching command in its log: %w", tg.String(), cluster, pitr.ErrTargetNotCovered)
		}
		at := pitr.AtTime(first.Add(-time.Millisecond))
		for _, i := range unmatched {
			view := catalog.NamedSource(names[i]).Backend(repo)
			p, err := pitr.NewPlan(ctx, view, at, pitr.Options{Identities: o.Identities})
			if err != nil {
				return res, fmt.Errorf("shard %s (no matching command; cut at %s, the earliest match): %w", names[i], first.Format(time.RFC3339Nano), err)
			}
			p.Notes = append(p.Notes, fmt.Sprintf("no matching command in this shard's log: cut just before the earliest match (%s)", first.UTC().Format(time.RFC3339Nano)))
			plans[i] = p
		}
	}
	var lo, hi time.Time
	for i, p := range plans {
		if p.Base.Object.Encryption != "" && len(o.Identities) == 0 {
			return res, fmt.Errorf("shard %s: base snapshot %s is encrypted (recipients %s): give --identity FILE or set $REDBACK_IDENTITY_FILE", names[i], p.Base.ID, strings.Join(p.Base.Object.Recipients, ", "))
		}
		res.Shards = append(res.Shards, PointShard{Source: names[i], Generation: p.Generation.ID, BaseSnapshot: p.Base.ID,
			Offset: p.Offset, Time: p.Time, Match: p.Match, Notes: p.Notes})
		if lo.IsZero() || p.Time.Before(lo) {
			lo = p.Time
		}
		if p.Time.After(hi) {
			hi = p.Time
		}
	}
	res.SpreadSeconds = hi.Sub(lo).Seconds()

	dir, err := os.MkdirTemp(o.TempDir, "redback-point-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	sources := make([]shardSource, len(plans))
	version := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i, p := range plans {
		g.Go(func() error {
			bin := o.RedisServer
			if bin == "" {
				b, err := scratch.Choose(gctx, "", p.ScratchNeed())
				if err != nil {
					return fmt.Errorf("shard %s: rebuilding the point: %w", names[i], err)
				}
				bin = b.Path
			}
			path := filepath.Join(dir, names[i]+".rdb")
			ro := o.Restore
			ro.Progress, ro.Force = nil, false
			if _, err := p.ToRDB(gctx, path, bin, ro); err != nil {
				return fmt.Errorf("shard %s: rebuilding the point: %w", names[i], err)
			}
			v, err := rdbVersion(path)
			if err != nil {
				return fmt.Errorf("shard %s: %w", names[i], err)
			}
			sources[i] = shardSource{src: fileSource(names[i]+" at "+p.Time.UTC().Format(time.RFC3339Nano), path), footer: uint16(v)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	for _, s := range sources {
		version = max(version, int(s.footer))
	}
	ro := o.RestoreOptions
	ro.Restore.NoPrecheck = true // the files were just written by the servers that rebuilt them
	rr, err := restoreShards(ctx, "cluster "+cluster+" at "+tg.String(), sources, version, target, ro)
	if rr != nil {
		res.RestoreResult = rr
	}
	return res, err
}

func rdbVersion(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rd, err := rdb.NewReader(f, rdb.Options{})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return rd.Version(), nil
}

func fileSource(name, path string) restore.Source {
	return restore.Source{Name: name, Size: -1, Open: func(context.Context) (io.ReadCloser, error) { return os.Open(path) }}
}

// Result is the sum of the targets' results.
func (r *PointResult) Result() *restore.Result { return &r.RestoreResult.Result }
