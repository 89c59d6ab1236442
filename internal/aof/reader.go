package aof

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"redback/internal/resp"
)

// ReaderOptions bound what a Reader accepts and name its input in errors.
type ReaderOptions struct {
	File        string // named in errors
	StartOffset int64  // offset of the first byte read (e.g. after an RDB preamble)
	MaxArgBytes int64  // 0 means resp.DefaultMaxBulkLen
	MaxArgs     int    // 0 means resp.DefaultMaxArrayLen
}

// RecordKind says what a Record holds.
type RecordKind int

// Record kinds.
const (
	RecordCommand    RecordKind = iota + 1 // Args
	RecordAnnotation                       // Annotation, and Timestamp when it is #TS:<unix>
)

// Record is one command or annotation. Its slices are valid until the next
// call to Next.
type Record struct {
	Kind   RecordKind
	Offset int64 // offset of its first byte ('*' or '#')
	Line   int64 // 1-based line of its first byte
	Size   int64 // bytes it occupies, framing included

	Args [][]byte // RecordCommand

	Annotation   []byte // RecordAnnotation: the line without '#' and the line end
	Timestamp    int64  // RecordAnnotation: the unix seconds of a #TS: annotation
	HasTimestamp bool   // RecordAnnotation: Timestamp is set
}

// Reader streams the records of one AOF (the RESP part): resp.ReadRecord
// with annotations, its errors as *CorruptionError naming the file.
type Reader struct {
	rd   *resp.Reader
	file string
	off  int64
	rec  Record
	err  error
}

// NewReader returns a Reader over r positioned at a record boundary.
func NewReader(r io.Reader, opts ReaderOptions) *Reader {
	rd := resp.NewReader(r, resp.Options{
		MaxBulkLen:  opts.MaxArgBytes,
		MaxArrayLen: int64(opts.MaxArgs),
		Annotations: true,
		Lines:       true,
		// A log holds what its server accepted: no limit on a command's
		// total size beyond its arguments'.
		MaxCommandLen: math.MaxInt64,
		StartOffset:   opts.StartOffset,
	})
	return &Reader{rd: rd, file: opts.File, off: opts.StartOffset}
}

// Offset is the offset just after the last record returned.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next record, io.EOF at a clean end, or a
// *CorruptionError (wrapping ErrTruncated for a torn tail). After an error
// every call returns the same error.
func (r *Reader) Next() (*Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	r.off = rec.Offset + rec.Size
	return rec, nil
}

func (r *Reader) next() (*Record, error) {
	in, err := r.rd.ReadRecord()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		var pe *resp.ProtocolError
		if !errors.As(err, &pe) {
			return nil, fmt.Errorf("read %s at offset %d: %w", r.file, r.rd.Offset(), err)
		}
		reason := errors.New(pe.Msg)
		if pe.Err == io.ErrUnexpectedEOF {
			reason = fmt.Errorf("%s: %w", pe.Msg, ErrTruncated)
		}
		return nil, &CorruptionError{File: r.file, Offset: pe.Offset, Line: pe.Line, Err: reason}
	}
	r.rec = Record{Kind: RecordCommand, Offset: in.Offset, Line: in.Line, Size: in.Size, Args: in.Args}
	if !in.Annotation {
		return &r.rec, nil
	}
	rec := &r.rec
	rec.Kind, rec.Args, rec.Annotation = RecordAnnotation, nil, in.Text
	if ts, ok := bytes.CutPrefix(in.Text, []byte("TS:")); ok {
		n, err := strconv.ParseInt(string(ts), 10, 64)
		if err != nil {
			return nil, &CorruptionError{File: r.file, Offset: rec.Offset, Line: rec.Line, Err: fmt.Errorf("invalid timestamp annotation %q", "#"+string(in.Text))}
		}
		rec.Timestamp, rec.HasTimestamp = n, true
	}
	return rec, nil
}
