package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"redback/internal/atomicfile"
	"redback/internal/rdb"
)

// Output is an RDB file being written the way ToFile writes one, for
// callers that compose the records themselves (a cluster's keys merged
// into one file, or split per target node): a temporary file beside Path,
// published by Commit (owner and mode matched, synced, renamed over Path,
// the directory synced) or removed by Abort. Several may be open at once.
type Output struct {
	Path string
	W    *rdb.Writer // write the records here (header written)
	tmp  *os.File
}

// CreateOutput starts an RDB file of version at path; an existing path is
// refused (ErrExists) unless force.
func CreateOutput(path string, version int, force bool) (*Output, error) {
	if _, err := os.Lstat(path); err == nil && !force {
		return nil, fmt.Errorf("%s: %w: give --force to replace it", path, ErrExists)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".redback-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	w, err := rdb.NewWriter(&atomicfile.Writer{F: tmp}, version)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return &Output{Path: path, W: w, tmp: tmp}, nil
}

// Commit ends the RDB (EOF opcode, checksum) and publishes it at Path. On
// an error before the rename the temporary file is removed and Path
// untouched.
func (o *Output) Commit() error {
	if err := o.W.Close(); err != nil {
		o.Abort()
		return fmt.Errorf("%s: %w", o.Path, err)
	}
	published, err := publish(o.tmp, o.Path)
	if !published {
		o.Abort()
	}
	return err
}

// publish gives the written temporary file tmp the owner and mode of
// path's file or dir, syncs, closes and renames it over path, then syncs
// the directory. published says whether the rename happened (else tmp is
// still there for the caller to remove).
func publish(tmp *os.File, path string) (published bool, err error) {
	dir := filepath.Dir(path)
	if err := matchOwner(tmp, path, dir); err != nil {
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		return false, fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, fmt.Errorf("rename into %s: %w", path, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return true, fmt.Errorf("sync %s: %w", dir, err)
	}
	return true, nil
}

// Abort removes the temporary file; Path is untouched.
func (o *Output) Abort() {
	o.tmp.Close()
	os.Remove(o.tmp.Name())
}

// PrepareDir checks that dir is a directory a restored dump.rdb can go to:
// an AOF a redis-server would load instead is refused unless force, which
// moves it aside (the notes say where).
func PrepareDir(dir string, force bool) (notes []string, err error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("target dir: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("target dir %s is not a directory", dir)
	}
	return staleAOF(dir, force)
}
