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
)

// ToRDB writes the restored state as one RDB file at path: it writes the
// AOF directory into a scratch dir next to path, loads it into a scratch
// server (bin, or when empty the server on PATH that scratch.Choose picks
// for the base snapshot's RDB version and source) on a free
// loopback port, runs SAVE, and moves dump.rdb to path (fsynced). The
// scratch server runs as a replica of an unreachable address so it expires
// nothing. The scratch server and dir are removed in every case. An
// existing path is refused unless ro.Force.
func (p *Plan) ToRDB(ctx context.Context, path, bin string, ro restore.Options) (*Result, error) {
	start := time.Now()
	if _, err := os.Stat(path); err == nil && !ro.Force {
		return &Result{}, fmt.Errorf("%s: %w (use --force to replace it)", path, restore.ErrExists)
	}
	build, err := scratch.Choose(ctx, bin, p.ScratchNeed())
	if err != nil {
		return &Result{}, fmt.Errorf("turning the log into an RDB needs a scratch server: %w", err)
	}
	bin = build.Path
	abs, err := filepath.Abs(path)
	if err != nil {
		return &Result{}, err
	}
	s, err := scratch.New(filepath.Dir(abs), ".redback-pitr-")
	if err != nil {
		return &Result{}, fmt.Errorf("scratch dir: %w", err)
	}
	defer s.Close()
	dro := ro
	dro.Force = false
	res, err := p.ToDir(ctx, s.Dir, dro)
	if err != nil {
		return res, err
	}
	defer func() { res.Duration = time.Since(start) }()
	// Any db the log SELECTs must exist.
	if err := s.Start(ctx, scratch.Options{Bin: bin, Databases: 256, AOFDir: AOFDirName}); err != nil {
		return res, err
	}
	if err := s.Wait(ctx, nil); err != nil {
		if errors.Is(err, scratch.ErrExited) {
			return res, fmt.Errorf("scratch server %s could not load the restored AOF: %s", build, s.LogTail(6))
		}
		return res, err
	}
	c := s.Client(0)
	defer c.Close()
	if err := c.Do(ctx, "SAVE").Err(); err != nil {
		return res, fmt.Errorf("scratch redis-server SAVE: %w", err)
	}
	s.Stop()
	src, err := os.Open(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		return res, err
	}
	defer src.Close()
	err = atomicfile.Write(abs, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	})
	return res, err
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
