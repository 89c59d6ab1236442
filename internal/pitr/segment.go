package pitr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"filippo.io/age"

	"redback/internal/aof"
	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/storage"
)

// SegmentError reports a stored segment whose content contradicts its
// manifest (bad index, offsets past its end, damaged AOF).
type SegmentError struct {
	Key    string // data object key
	AOFPos int64  // position in the raw AOF
	Err    error
}

func (e *SegmentError) Error() string {
	return fmt.Sprintf("segment %s at aof position %d: %v", e.Key, e.AOFPos, e.Err)
}
func (e *SegmentError) Unwrap() error { return e.Err }

// VerificationFailed maps a damaged segment to exit code 3.
func (e *SegmentError) VerificationFailed() bool { return true }

// record is one record of a segment as replay and search see it. Args are
// valid until the callback returns.
type record struct {
	Annotation bool
	Raw        []byte // annotation line without '#' and CRLF
	Args       [][]byte
	Name       string // upper-cased command name
	AOFPos     int64
	Size       int64
	// Offset is the replication offset before the command; Synthetic
	// commands (the SELECT a segment starts with, before its first
	// checkpoint) occupy no offsets: Offset is the segment start.
	Offset    int64
	Synthetic bool
	Ms        int64
	DB        int // db the command applies to (for SELECT: the new db)
}

// end is the replication offset after the command.
func (r *record) end() int64 {
	if r.Synthetic {
		return r.Offset
	}
	return r.Offset + r.Size
}

// errStop ends a scan early without error.
var errStop = errors.New("stop scan")

// scanSegment streams the records of seg's AOF to fn, with offsets, times
// and dbs from the segment index. It checks the index against the content:
// a checkpoint must fall on a command start, offsets never go back, and no
// command ends past seg.End.
func scanSegment(ctx context.Context, b storage.Backend, ids []age.Identity, seg *catalog.Segment, fn func(*record) error) error {
	key := seg.Object.Key
	if seg.Object.Encryption != "" && len(ids) == 0 {
		return fmt.Errorf("segment %s is encrypted (recipients %s): give --identity FILE or set $REDBACK_IDENTITY_FILE", key, strings.Join(seg.Object.Recipients, ", "))
	}
	rc, err := b.Get(ctx, key, 0, -1)
	if err != nil {
		return fmt.Errorf("open segment %s: %w", key, err)
	}
	defer rc.Close()
	pr, err := pack.NewReader(rc, pack.Expect{Key: key, Size: seg.Object.StoredBytes, SHA256: seg.Object.SHA256, Encrypted: seg.Object.Encryption != ""}, ids)
	if err != nil {
		return fmt.Errorf("open segment %s: %w", key, err)
	}
	defer pr.Close()
	ar := aof.NewReader(bufio.NewReaderSize(pr, 256<<10), aof.ReaderOptions{File: key})
	var (
		ci      int
		started bool
		next    = seg.Start
		ms      = seg.FirstMs
		db      = seg.DBAtStart
		rec     record
		n       int
	)
	bad := func(pos int64, format string, args ...any) error {
		return &SegmentError{Key: key, AOFPos: pos, Err: fmt.Errorf(format, args...)}
	}
	for {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read segment %s: %w", key, err)
		}
		rec = record{AOFPos: r.Offset, Size: r.Size, DB: db, Ms: ms}
		if r.Kind == aof.RecordAnnotation {
			rec.Annotation, rec.Raw, rec.Offset = true, r.Annotation, next
			if err := fn(&rec); err != nil {
				return err
			}
			continue
		}
		for ci < len(seg.Index) && seg.Index[ci].AOFPos() < r.Offset {
			return bad(seg.Index[ci].AOFPos(), "index checkpoint does not fall on a command start")
		}
		if ci < len(seg.Index) && seg.Index[ci].AOFPos() == r.Offset {
			cp := seg.Index[ci]
			ci++
			if cp.Offset() < next {
				return bad(r.Offset, "index offset %d goes back (expected at least %d)", cp.Offset(), next)
			}
			next, ms, started = cp.Offset(), cp.UnixMs(), true
			rec.Ms = ms
		}
		rec.Args = r.Args
		rec.Name = strings.ToUpper(string(r.Args[0]))
		if started {
			rec.Offset = next
			next += r.Size
			if next > seg.End {
				return bad(r.Offset, "command ends at offset %d, past the segment end %d", next, seg.End)
			}
		} else {
			rec.Offset, rec.Synthetic = next, true
		}
		if rec.Name == "SELECT" && len(r.Args) == 2 {
			d, err := strconv.Atoi(string(r.Args[1]))
			if err != nil || d < 0 {
				return bad(r.Offset, "SELECT %q", r.Args[1])
			}
			db = d
			rec.DB = d
		}
		if err := fn(&rec); err != nil {
			return err
		}
	}
	if ci < len(seg.Index) {
		return bad(seg.Index[ci].AOFPos(), "index checkpoint past the last command")
	}
	return nil
}
