package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/clusterset"
	"redback/internal/pitr"
	"redback/internal/redisurl"
	"redback/internal/restore"
	"redback/internal/scratch"
	"redback/internal/storage"
)

// SnapshotSource picks the snapshot a restore reads from repo (one
// source's objects): the one with id, or the newest verified one when id
// is empty, and checks that it can be read (an encrypted snapshot needs
// ids). The errors say what to do next.
func SnapshotSource(ctx context.Context, repo storage.Backend, id string, ids []age.Identity) (restore.Source, *catalog.Snapshot, error) {
	var snap *catalog.Snapshot
	var err error
	if id != "" {
		snap, err = catalog.ReadSnapshot(ctx, repo, id)
		if errors.Is(err, catalog.ErrNoSnapshot) {
			err = fmt.Errorf("no snapshot %q in %s: see the ids with `redback list --repo %s`", id, repo.Location(), repo.Location())
		}
	} else {
		snap, err = catalog.Latest(ctx, repo)
		if errors.Is(err, catalog.ErrNoSnapshot) {
			err = fmt.Errorf("nothing to restore: %w (none verified); see `redback list --repo %s`", err, repo.Location())
		}
	}
	if err != nil {
		return restore.Source{}, nil, err
	}
	if snap.Object.Encryption != "" && len(ids) == 0 {
		return restore.Source{}, nil, fmt.Errorf("snapshot %s is encrypted (recipients %s): give --identity FILE or set $REDBACK_IDENTITY_FILE", snap.ID, strings.Join(snap.Object.Recipients, ", "))
	}
	return restore.SnapshotSource(repo, snap, ids), snap, nil
}

// RestorePoint is what a restore brings back: a snapshot of the repository
// (Snapshot by id, the newest verified one when empty), a point of its log
// (Log: a time, an offset, just before a command, the newest durable
// point), or a local RDB file (File, no repository); of a Redis Cluster, a
// backup set (Set) or a point of its shards' logs (Cluster with Log). Build
// it with LatestSnapshot, SnapshotPoint, LogPoint, FilePoint, SetPoint or
// ClusterPoint.
type RestorePoint struct {
	Snapshot string
	Log      *pitr.Target
	File     string
	Set      *catalog.Set
	Cluster  string
}

// SetPoint is the backup set s of a Redis Cluster.
func SetPoint(s *catalog.Set) RestorePoint { return RestorePoint{Set: s} }

// ClusterPoint is the point t of the logs of cluster's shipped shards
// (each shard cut in its own log).
func ClusterPoint(cluster string, t pitr.Target) RestorePoint {
	return RestorePoint{Cluster: cluster, Log: &t}
}

// LatestSnapshot is the newest verified snapshot.
func LatestSnapshot() RestorePoint { return RestorePoint{} }

// SnapshotPoint is the snapshot with id.
func SnapshotPoint(id string) RestorePoint { return RestorePoint{Snapshot: id} }

// LogPoint is the point t of the log.
func LogPoint(t pitr.Target) RestorePoint { return RestorePoint{Log: &t} }

// FilePoint is the RDB file at path.
func FilePoint(path string) RestorePoint { return RestorePoint{File: path} }

// Destination is where a restore writes: exactly one of a live server
// (Redis), a data dir (Dir: dump.rdb, or for a point of the log a
// multi-part AOF directory; for a backup set one dir per source shard, or
// with SlotsFrom one per primary of that cluster) and an RDB file (RDB).
type Destination struct {
	Redis     *redisurl.URL
	Dir       string
	RDB       string
	SlotsFrom *redisurl.URL
}

func (d Destination) String() string {
	switch {
	case d.Redis != nil:
		return d.Redis.Redacted()
	case d.Dir != "":
		return "dir " + d.Dir
	}
	return "file " + d.RDB
}

// RestoreParams are the inputs of Restore besides the point and the
// destination.
type RestoreParams struct {
	// Options: conflict mode, parallelism, method, filters (snapshots and
	// files only), force, progress.
	Options    restore.Options
	Identities []age.Identity
	// RedisServer is the server binary that rebuilds a point of the log
	// (empty: the one scratch.Choose picks).
	RedisServer string
	// Decided, when set, is called once what is restored is known, before
	// anything is written (the CLI prints it, or sizes its progress bar).
	Decided func(*RestoreDecision)
	// Warn reports a degraded path taken (a replay straight into the
	// target when no scratch server can rebuild the point).
	Warn func(string)
	// Log receives the progress of a cluster's restore (redirects,
	// passes).
	Log *slog.Logger
}

// RestoreDecision is what a restore reads: the source of a snapshot or
// file restore, or the plan of a point of the log.
type RestoreDecision struct {
	Source     restore.Source
	SnapshotID string // the snapshot restored ("" for a file)
	Plan       *pitr.Plan
}

// RestoreResult is what a restore did: Snapshot for a snapshot or a file
// (into a cluster, Set too: its targets),
// Log for a point of the log, Set for a backup set, Cluster for a point of
// a cluster's logs.
type RestoreResult struct {
	Decision RestoreDecision
	Snapshot *restore.Result
	Log      *pitr.Result
	Set      *clusterset.RestoreResult
	Cluster  *clusterset.PointResult
	// SetDirs are the data dirs of a set written one per source shard;
	// SetFiles the files of a set written per target node or as one RDB.
	SetDirs  []clusterset.DirResult
	SetFiles *clusterset.FilesResult
	// Rebuilt: the point of the log was rebuilt in a scratch server and
	// restored from there (pitr.ToRedisExact), so the check of Log.Base
	// (DEBUG DIGEST, or a keyed sample where the target refuses DEBUG) is
	// of the target's final state against the point, not of the base
	// snapshot only.
	Rebuilt bool
}

// ErrSetDestination is returned for a cluster's point with a destination
// other than a live server (not supported yet).
var ErrSetDestination = errors.New("a Redis Cluster's point in time restores into a server or a cluster only")

// Restore restores pt of repo into dst: the one entry point of `redback
// restore`, whatever the point. repo is one source's objects for a
// snapshot or a point of its log, the whole repository for a set or a
// cluster, and nil for a file. Its errors are the restore, pitr and
// clusterset packages' (exit codes follow them); a nil result means
// nothing was decided.
func Restore(ctx context.Context, repo storage.Backend, pt RestorePoint, dst Destination, p RestoreParams) (*RestoreResult, error) {
	if pt.Set != nil {
		return restoreSet(ctx, repo, pt.Set, dst, p)
	}
	if pt.Cluster != "" {
		if dst.Redis == nil {
			return nil, ErrSetDestination
		}
		co := clusterset.RestoreOptions{Restore: p.Options, Identities: p.Identities, Log: p.Log}
		res, err := clusterset.RestorePoint(ctx, repo, pt.Cluster, *pt.Log, dst.Redis, clusterset.PointOptions{RestoreOptions: co, RedisServer: p.RedisServer})
		return &RestoreResult{Cluster: res}, err
	}
	if pt.Log != nil {
		return restoreLog(ctx, repo, *pt.Log, dst, p)
	}
	r := &RestoreResult{}
	if pt.File != "" {
		if _, err := os.Stat(pt.File); err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		r.Decision.Source = restore.FileSource(pt.File)
	} else {
		src, snap, err := SnapshotSource(ctx, repo, pt.Snapshot, p.Identities)
		if err != nil {
			return nil, err
		}
		r.Decision.Source, r.Decision.SnapshotID = src, snap.ID
	}
	if p.Decided != nil {
		p.Decided(&r.Decision)
	}
	src, ro := r.Decision.Source, p.Options
	var err error
	switch {
	case dst.Redis != nil:
		r.Snapshot, err = restore.ToRedis(ctx, src, dst.Redis, ro)
		if errors.Is(err, restore.ErrCluster) {
			// The target is a cluster node (refused before any write, the
			// stored bytes already proven): route the keys by slot.
			co := clusterset.RestoreOptions{Restore: ro, Identities: p.Identities, Log: p.Log}
			co.Restore.NoPrecheck = true
			r.Set, err = clusterset.RestoreSource(ctx, src, dst.Redis, co)
			r.Snapshot = &r.Set.Result
		}
	case dst.Dir != "":
		r.Snapshot, err = restore.ToDir(ctx, src, dst.Dir, ro)
	default:
		r.Snapshot, err = restore.ToFile(ctx, src, dst.RDB, ro)
	}
	return r, err
}

// restoreSet is Restore of a backup set: into a server or cluster
// (clusterset.Restore), a data dir per source shard (ToDirs) or per
// primary of dst.SlotsFrom (ToNodeDirs), or one RDB file (ToRDB).
func restoreSet(ctx context.Context, repo storage.Backend, set *catalog.Set, dst Destination, p RestoreParams) (*RestoreResult, error) {
	r := &RestoreResult{}
	var err error
	switch {
	case dst.Redis != nil:
		co := clusterset.RestoreOptions{Restore: p.Options, Identities: p.Identities, Log: p.Log}
		r.Set, err = clusterset.Restore(ctx, repo, set, dst.Redis, co)
	case dst.Dir != "" && dst.SlotsFrom != nil:
		r.SetFiles, err = clusterset.ToNodeDirs(ctx, repo, set, dst.Dir, dst.SlotsFrom, p.Options, p.Identities)
	case dst.Dir != "":
		r.SetDirs, err = clusterset.ToDirs(ctx, repo, set, dst.Dir, p.Options, p.Identities)
	default:
		r.SetFiles, err = clusterset.ToRDB(ctx, repo, set, dst.RDB, p.Options, p.Identities)
	}
	return r, err
}

// restoreLog is Restore of a point of the log: the plan (pitr.NewPlan),
// then its base and log into dst. Into a live server the point is rebuilt
// in a scratch server first and restored from there (pitr.ToRedisExact);
// without any server binary to do that, the log is replayed straight into
// the target, with a warning.
func restoreLog(ctx context.Context, repo storage.Backend, t pitr.Target, dst Destination, p RestoreParams) (*RestoreResult, error) {
	plan, err := pitr.NewPlan(ctx, repo, t, pitr.Options{Identities: p.Identities})
	if err != nil {
		return nil, err
	}
	if plan.Base.Object.Encryption != "" && len(p.Identities) == 0 {
		return nil, fmt.Errorf("base snapshot %s is encrypted (recipients %s): give --identity FILE or set $REDBACK_IDENTITY_FILE", plan.Base.ID, strings.Join(plan.Base.Object.Recipients, ", "))
	}
	r := &RestoreResult{Decision: RestoreDecision{Plan: plan, SnapshotID: plan.Base.ID}}
	if p.Decided != nil {
		p.Decided(&r.Decision)
	}
	ro := p.Options
	switch {
	case dst.Redis != nil:
		b, cerr := scratch.Choose(ctx, p.RedisServer, plan.ScratchNeed())
		switch {
		case cerr == nil:
			r.Log, err = plan.ToRedisExact(ctx, dst.Redis, ro, b.Path)
			r.Rebuilt = true
		case p.RedisServer != "" || len(scratch.Candidates()) > 0:
			err = fmt.Errorf("rebuilding the point: %w", cerr)
		default:
			if p.Warn != nil {
				p.Warn("no redis-server or valkey-server on PATH to rebuild the point in a scratch server: replaying the log straight into the target; keys whose TTL ended since the point may come back without their TTL")
			}
			r.Log, err = plan.ToRedis(ctx, dst.Redis, ro)
		}
	case dst.Dir != "":
		r.Log, err = plan.ToDir(ctx, dst.Dir, ro)
	default:
		r.Log, err = plan.ToRDB(ctx, dst.RDB, p.RedisServer, ro)
	}
	return r, err
}
