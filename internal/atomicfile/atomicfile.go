// Package atomicfile holds the pieces of writing a file that a reader sees
// either whole or not at all, and that survives a crash once published:
// write a temporary file in the target's directory (Writer starts its
// writeback as it grows, so the final fsync is short), fsync it, rename it
// over the target, fsync the directory (SyncDir).
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// writebackChunk is how much is written between writeback requests.
const writebackChunk = 8 << 20

// Writer writes to F and asks the kernel to start writing each further
// writebackChunk bytes to disk, without waiting for it. Writes must be
// sequential from F's current offset at the start (0 for a new file).
type Writer struct {
	F           *os.File
	off, hinted int64
}

func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.F.Write(p)
	w.off += int64(n)
	if w.off-w.hinted >= writebackChunk {
		startWriteback(w.F, w.hinted, w.off-w.hinted)
		w.hinted = w.off
	}
	return n, err
}

// SyncDir fsyncs a directory so that a rename or a new name in it is
// durable. File systems that cannot sync a directory ("invalid argument")
// are not an error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && strings.Contains(err.Error(), "invalid argument") {
		return nil
	}
	return err
}

// Write writes path through a temporary file in its directory: fill
// writes the content (through a Writer), then the file is fsynced,
// renamed over path and the directory fsynced. On any error path is
// untouched and the temporary file removed.
func Write(path string, fill func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if err := fill(&Writer{F: f}); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}
