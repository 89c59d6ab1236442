package pitr

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/resp"
	"redback/internal/storage"
)

// SegmentError reports a stored segment whose content contradicts its
// manifest (bad index, offsets past its end, damaged AOF).
type SegmentError struct {
	Key      string // data object key
	Manifest string // manifest key (with the index), when known
	AOFPos   int64  // position in the raw AOF
	Err      error
}

func (e *SegmentError) Error() string {
	if e.Manifest != "" {
		return fmt.Sprintf("segment %s (manifest %s) at aof position %d: %v", e.Key, e.Manifest, e.AOFPos, e.Err)
	}
	return fmt.Sprintf("segment %s at aof position %d: %v", e.Key, e.AOFPos, e.Err)
}
func (e *SegmentError) Unwrap() error { return e.Err }

// VerificationFailed maps a damaged segment to exit code 3.
func (e *SegmentError) VerificationFailed() bool { return true }

// record is one record of a segment as replay and search see it. Args are
// valid until the callback returns.
type record struct {
	Annotation bool
	Raw        []byte   // the record's bytes as stored (an annotation: '#', text, CRLF)
	Args       [][]byte // command arguments (slices of Raw)
	Name       string   // upper-cased command name
	AOFPos     int64
	Size       int64
	// Offset is the replication offset before the command; Synthetic
	// commands (the SELECT a segment starts with, before its first
	// checkpoint) occupy no offsets: Offset is the segment start.
	Offset    int64
	Synthetic bool
	Ms        int64
	// From, when > 0, says the command ran at a time only known to lie
	// in (From, Ms] (see catalog.Checkpoint).
	From int64
	DB   int // db the command applies to (for SELECT: the new db)
	// Tick is the time of a time marker annotation ("#TICK:<ms>", see
	// catalog.TickChannel); 0 for anything else.
	Tick int64
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
	return scanRecords(ctx, pr, key, seg, fn)
}

// newSegReader reads the records of a segment's AOF (RESP commands and '#'
// annotation lines) with their raw bytes: the replay writes the raw bytes
// as they are instead of re-encoding them. A log holds what its server
// accepted: no limit on a command's total size beyond its arguments'.
func newSegReader(r io.Reader) *resp.Reader {
	return resp.NewReader(bufio.NewReaderSize(r, 256<<10), resp.Options{Annotations: true, KeepRaw: true, MaxCommandLen: math.MaxInt64})
}

// scanRecords is scanSegment on the raw (unsealed) AOF bytes read from r.
func scanRecords(ctx context.Context, r io.Reader, key string, seg *catalog.Segment, fn func(*record) error) error {
	sr := newSegReader(r)
	names := map[string]string{}
	var (
		ci      int
		started bool
		next    = seg.Start
		ms      = seg.FirstMs
		from    int64
		db      = seg.DBAtStart
		rec     record
		n       int
	)
	bad := func(pos int64, format string, args ...any) error {
		return &SegmentError{Key: key, Manifest: catalog.SegmentKey(seg.Generation, seg.Start, seg.End), AOFPos: pos, Err: fmt.Errorf(format, args...)}
	}
	for {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		pos := sr.Offset()
		in, err := sr.ReadRecord()
		if err == io.EOF {
			break
		}
		if err != nil {
			var ie *pack.IntegrityError
			if errors.As(err, &ie) || pack.ReadFailure(err) || ctx.Err() != nil {
				// damage of the stored bytes, or a failure to read them
				return fmt.Errorf("read segment %s: %w", key, err)
			}
			return bad(pos, "%w", err)
		}
		rec = record{AOFPos: pos, Size: in.Size, DB: db, Ms: ms, From: from, Raw: in.Raw}
		if in.Annotation {
			rec.Annotation, rec.Offset = true, next
			rec.Tick, _ = catalog.ParseTick(in.Raw)
			if err := fn(&rec); err != nil {
				return err
			}
			continue
		}
		if ci < len(seg.Index) && seg.Index[ci].AOFPos() < pos {
			return bad(seg.Index[ci].AOFPos(), "index checkpoint does not fall on a command start")
		}
		// Several checkpoints may share a position (skipped control
		// traffic right at the start): the last one describes the command.
		for ci < len(seg.Index) && seg.Index[ci].AOFPos() == pos {
			cp := seg.Index[ci]
			ci++
			if cp.Offset() < next {
				return bad(pos, "index offset %d goes back (expected at least %d)", cp.Offset(), next)
			}
			next, ms, from, started = cp.Offset(), cp.UnixMs(), cp.FromMs(), true
			rec.Ms, rec.From = ms, from
		}
		rec.Args = in.Args
		rec.Name = upperName(names, in.Args[0])
		if started {
			rec.Offset = next
			next += rec.Size
			if next > seg.End {
				return bad(pos, "command ends at offset %d, past the segment end %d", next, seg.End)
			}
		} else {
			rec.Offset, rec.Synthetic = next, true
		}
		if rec.Name == "SELECT" && len(in.Args) == 2 {
			d, err := strconv.Atoi(string(in.Args[1]))
			if err != nil || d < 0 {
				return bad(pos, "SELECT %q", in.Args[1])
			}
			db = d
			rec.DB = d
		}
		if err := fn(&rec); err != nil {
			return err
		}
	}
	// Trailing checkpoints sit at the end of the AOF and carry the offset
	// after skipped control traffic (at most seg.End).
	for ; ci < len(seg.Index); ci++ {
		cp := seg.Index[ci]
		if cp.AOFPos() != sr.Offset() {
			return bad(cp.AOFPos(), "index checkpoint does not fall on a command start")
		}
		if cp.Offset() < next || cp.Offset() > seg.End {
			return bad(cp.AOFPos(), "trailing index offset %d outside %d..%d", cp.Offset(), next, seg.End)
		}
		next = cp.Offset()
	}
	if next != seg.End {
		return bad(sr.Offset(), "the log ends at offset %d but the manifest says %d", next, seg.End)
	}
	return nil
}

// upperName returns the upper-cased command name, interned in names so that
// a scan does not allocate one string per command.
func upperName(names map[string]string, b []byte) string {
	var tmp [32]byte
	if len(b) > len(tmp) {
		return strings.ToUpper(string(b))
	}
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		tmp[i] = c
	}
	if s, ok := names[string(tmp[:len(b)])]; ok {
		return s
	}
	s := string(tmp[:len(b)])
	if len(names) < 4096 {
		names[s] = s
	}
	return s
}

// CheckSegmentBytes checks a segment's raw AOF bytes (before sealing)
// against its manifest the way CheckSegment does after storing: ship runs
// it before storing a segment, so a segment whose index contradicts its
// bytes is never written. Damage is a *SegmentError.
func CheckSegmentBytes(seg *catalog.Segment, raw []byte) error {
	return scanRecords(context.Background(), bytes.NewReader(raw), seg.Object.Key, seg, func(*record) error { return nil })
}

// CheckSegment reads segment seg completely and checks it against its
// manifest: stored size and sha256, decryption, decompression, every record
// well formed, the index consistent with the content, and the log ending
// exactly at seg.End. Damage is a *SegmentError or a *pack.IntegrityError.
func CheckSegment(ctx context.Context, b storage.Backend, ids []age.Identity, seg *catalog.Segment) error {
	return scanSegment(ctx, b, ids, seg, func(*record) error { return nil })
}
