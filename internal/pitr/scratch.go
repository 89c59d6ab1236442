package pitr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"redback/internal/atomicfile"
	"redback/internal/redisurl"
	"redback/internal/restore"
	"redback/internal/scratch"
	"redback/internal/serverver"
)

// ToRDB writes the restored state as one RDB file at path: it rebuilds
// the point in a scratch server next to path (see Rebuild), runs SAVE, and
// moves dump.rdb to path (fsynced). An existing path is refused unless
// ro.Force.
func (p *Plan) ToRDB(ctx context.Context, path, bin string, ro restore.Options) (*Result, error) {
	if _, err := os.Stat(path); err == nil && !ro.Force {
		return &Result{}, fmt.Errorf("%s: %w (use --force to replace it)", path, restore.ErrExists)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return &Result{}, err
	}
	dro := ro
	dro.Force = false
	return p.Rebuild(ctx, filepath.Dir(abs), bin, dro, func(ctx context.Context, s *scratch.Server, _ serverver.Build) error {
		c := s.Client(0)
		defer c.Close()
		if err := c.Do(ctx, "SAVE").Err(); err != nil {
			return fmt.Errorf("scratch redis-server SAVE: %w", err)
		}
		s.Stop()
		src, err := os.Open(filepath.Join(s.Dir, "dump.rdb"))
		if err != nil {
			return err
		}
		defer src.Close()
		return atomicfile.Write(abs, func(w io.Writer) error {
			_, err := io.Copy(w, src)
			return err
		})
	})
}

// Rebuild loads the point into a scratch server and calls fn while it
// serves: it writes the AOF directory (ToDir) into a scratch dir made in
// parent (os.TempDir() when ""), starts the server bin (or, when empty,
// the one scratch.Choose picks for the base snapshot's RDB version and
// source) on a free loopback port on it, and waits until it loaded. The
// scratch server runs as a replica of an unreachable address, so it
// expires nothing. The scratch server and dir are removed in every case,
// after fn returns.
func (p *Plan) Rebuild(ctx context.Context, parent, bin string, ro restore.Options, fn func(context.Context, *scratch.Server, serverver.Build) error) (*Result, error) {
	start := time.Now()
	build, err := scratch.Choose(ctx, bin, p.ScratchNeed())
	if err != nil {
		return &Result{}, fmt.Errorf("turning the log into an RDB needs a scratch server: %w", err)
	}
	s, err := scratch.New(parent, ".redback-pitr-")
	if err != nil {
		return &Result{}, fmt.Errorf("scratch dir: %w", err)
	}
	defer s.Close()
	res, err := p.ToDir(ctx, s.Dir, ro)
	if err != nil {
		return res, err
	}
	defer func() { res.Duration = time.Since(start) }()
	// Any db the log SELECTs must exist.
	if err := s.Start(ctx, scratch.Options{Bin: build.Path, Databases: 256, AOFDir: AOFDirName}); err != nil {
		return res, err
	}
	if err := s.Wait(ctx, nil); err != nil {
		if errors.Is(err, scratch.ErrExited) {
			return res, fmt.Errorf("scratch server %s could not load the restored AOF: %s", build, s.LogTail(6))
		}
		return res, err
	}
	return res, fn(ctx, s, build)
}

// ToRedisExact restores the point into the server at u without replaying
// the log on it: the point is first rebuilt in a scratch server (bin, or
// when empty one chosen as ToRDB says) that loads the AOF directory as a
// replica of an unreachable address, so nothing expires while the log is
// applied, and saved as an RDB; that RDB is then restored with the restore
// package (RESTORE ... ABSTTL, conflict modes, keys already expired now are
// skipped and counted).
//
// Replaying the log straight into a live primary (ToRedis) is wrong for
// keys whose TTL ended between a command and the replay: the primary
// deletes such a key when a later command touches it (APPEND, HSET, ...)
// and the command then creates a new key without its TTL, or a PEXPIREAT
// that refreshed it finds nothing. ToRedisExact has no such gap.
func (p *Plan) ToRedisExact(ctx context.Context, u *redisurl.URL, ro restore.Options, bin string) (*Result, error) {
	start := time.Now()
	if err := checkBaseOptions(ro); err != nil {
		return &Result{}, err
	}
	if ro.Conflict == restore.ConflictFail {
		if err := checkEmpty(ctx, u); err != nil {
			return &Result{}, err
		}
	}
	dir, err := os.MkdirTemp("", "redback-pitr-")
	if err != nil {
		return &Result{}, fmt.Errorf("scratch dir: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "point.rdb")
	res, err := p.ToRDB(ctx, path, bin, restore.Options{})
	if err != nil {
		return res, err
	}
	rstart := time.Now()
	br, err := restore.ToRedis(ctx, restore.FileSource(path), u, ro)
	res.Base = br
	res.Replay = time.Since(rstart)
	res.Duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("restore the rebuilt point: %w", err)
	}
	return res, nil
}

// ScratchNeed is what a scratch server must load to rebuild a point of p:
// the base snapshot's RDB version, written by its source's server.
func (p *Plan) ScratchNeed() scratch.Need {
	src := p.Base.Source
	return scratch.NeedOf(p.Base.RDBVersion, src.RedisVersion, src.ValkeyVersion)
}
