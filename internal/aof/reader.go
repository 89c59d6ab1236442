package aof

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Limits of the Reader.
const (
	// DefaultMaxArgBytes caps one bulk string (Redis's proto-max-bulk-len default).
	DefaultMaxArgBytes = 512 << 20
	// DefaultMaxArgs caps the number of arguments of one command.
	DefaultMaxArgs = 1 << 20
	// MaxAnnotationLen is the longest annotation line, CRLF included
	// (AOF_ANNOTATION_LINE_MAX_LEN).
	MaxAnnotationLen = 1024
	maxHeaderLen     = 32 // "*<digits>\r\n" / "$<digits>\r\n"
	readChunk        = 64 << 10
)

// ReaderOptions bound what a Reader accepts and name its input in errors.
type ReaderOptions struct {
	File        string // named in errors
	StartOffset int64  // offset of the first byte read (e.g. after an RDB preamble)
	MaxArgBytes int64  // 0 means DefaultMaxArgBytes
	MaxArgs     int    // 0 means DefaultMaxArgs
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

// Reader streams the records of one AOF (the RESP part). It never trusts a
// length beyond the caps and allocates only as bytes actually arrive.
type Reader struct {
	br   *bufio.Reader
	opts ReaderOptions
	off  int64
	line int64
	rec  Record
	buf  []byte
	err  error
}

// NewReader returns a Reader over r positioned at a record boundary.
func NewReader(r io.Reader, opts ReaderOptions) *Reader {
	if opts.MaxArgBytes <= 0 {
		opts.MaxArgBytes = DefaultMaxArgBytes
	}
	if opts.MaxArgs <= 0 {
		opts.MaxArgs = DefaultMaxArgs
	}
	return &Reader{br: bufio.NewReaderSize(r, readChunk), opts: opts, off: opts.StartOffset, line: 1}
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
	return rec, nil
}

func (r *Reader) corrupt(off, line int64, format string, args ...any) error {
	return &CorruptionError{File: r.opts.File, Offset: off, Line: line, Err: fmt.Errorf(format, args...)}
}

func (r *Reader) truncated(off, line int64, what string) error {
	return &CorruptionError{File: r.opts.File, Offset: off, Line: line, Err: fmt.Errorf("%s: %w", what, ErrTruncated)}
}

func (r *Reader) next() (*Record, error) {
	start, startLine := r.off, r.line
	b, err := r.br.Peek(1)
	if err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read %s at offset %d: %w", r.opts.File, r.off, err)
	}
	r.rec = Record{Offset: start, Line: startLine}
	switch b[0] {
	case '#':
		return r.annotation()
	case '*':
		return r.command()
	}
	return nil, r.corrupt(start, startLine, "expected '*' or '#', got %q", b[0])
}

// readLine reads a line of at most max bytes ending in "\r\n" and returns
// it without the line end.
func (r *Reader) readLine(max int, what string) ([]byte, error) {
	off, line := r.off, r.line
	var got []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		got = append(got, chunk...)
		if len(got) > max {
			return nil, r.corrupt(off, line, "%s line longer than %d bytes", what, max)
		}
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			return nil, r.truncated(off, line, what)
		}
		return nil, fmt.Errorf("read %s at offset %d: %w", r.opts.File, r.off, err)
	}
	if len(got) < 2 || got[len(got)-2] != '\r' {
		return nil, r.corrupt(off, line, "%s line does not end in \\r\\n", what)
	}
	r.off += int64(len(got))
	r.line++
	return got[:len(got)-2], nil
}

func (r *Reader) annotation() (*Record, error) {
	l, err := r.readLine(MaxAnnotationLen, "annotation")
	if err != nil {
		return nil, err
	}
	rec := &r.rec
	rec.Kind = RecordAnnotation
	rec.Annotation = append(r.buf[:0], l[1:]...)
	r.buf = rec.Annotation
	if ts, ok := bytes.CutPrefix(rec.Annotation, []byte("TS:")); ok {
		n, err := strconv.ParseInt(string(ts), 10, 64)
		if err != nil {
			return nil, r.corrupt(rec.Offset, rec.Line, "invalid timestamp annotation %q", l)
		}
		rec.Timestamp, rec.HasTimestamp = n, true
	}
	rec.Size = r.off - rec.Offset
	return rec, nil
}

// header reads "<prefix><n>\r\n" with 0 <= n <= max.
func (r *Reader) header(prefix byte, max int64, what string) (int64, error) {
	off, line := r.off, r.line
	l, err := r.readLine(maxHeaderLen, what)
	if err != nil {
		return 0, err
	}
	if len(l) == 0 || l[0] != prefix {
		return 0, r.corrupt(off, line, "%s: expected '%c', got %q", what, prefix, l)
	}
	n, err := strconv.ParseInt(string(l[1:]), 10, 64)
	if err != nil || n < 0 {
		return 0, r.corrupt(off, line, "%s: invalid length %q", what, l[1:])
	}
	if n > max {
		return 0, r.corrupt(off, line, "%s: length %d exceeds the limit %d", what, n, max)
	}
	return n, nil
}

func (r *Reader) command() (*Record, error) {
	rec := &r.rec
	rec.Kind = RecordCommand
	argc, err := r.header('*', int64(r.opts.MaxArgs), "command")
	if err != nil {
		return nil, err
	}
	if argc == 0 {
		return nil, r.corrupt(rec.Offset, rec.Line, "command with 0 arguments")
	}
	// Arguments are appended to one buffer; slices are cut afterwards so
	// growth never invalidates them. Offsets are kept meanwhile.
	buf := r.buf[:0]
	ends := make([]int, 0, min(argc, 64))
	for i := int64(0); i < argc; i++ {
		n, err := r.header('$', r.opts.MaxArgBytes, fmt.Sprintf("argument %d", i+1))
		if err != nil {
			return nil, err
		}
		off, line := r.off, r.line
		// Read n bytes in chunks: memory grows with bytes present, not with
		// the declared length.
		for left := n; left > 0; {
			c := min(left, readChunk)
			buf = growLen(buf, int(c))
			got, err := io.ReadFull(r.br, buf[len(buf)-int(c):])
			r.line += int64(bytes.Count(buf[len(buf)-int(c):len(buf)-int(c)+got], []byte("\n")))
			r.off += int64(got)
			if err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
					return nil, r.truncated(off, line, fmt.Sprintf("argument %d (%d bytes)", i+1, n))
				}
				return nil, fmt.Errorf("read %s at offset %d: %w", r.opts.File, r.off, err)
			}
			left -= c
		}
		crlf, err := r.br.Peek(2)
		if err != nil {
			if err == io.EOF {
				return nil, r.truncated(r.off, r.line, fmt.Sprintf("argument %d", i+1))
			}
			return nil, fmt.Errorf("read %s at offset %d: %w", r.opts.File, r.off, err)
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return nil, r.corrupt(r.off, r.line, "argument %d: expected \\r\\n after %d bytes, got %q", i+1, n, crlf)
		}
		_, _ = r.br.Discard(2)
		r.off += 2
		r.line++
		ends = append(ends, len(buf))
	}
	r.buf = buf
	rec.Args = rec.Args[:0]
	prev := 0
	for _, e := range ends {
		rec.Args = append(rec.Args, buf[prev:e:e])
		prev = e
	}
	rec.Size = r.off - rec.Offset
	return rec, nil
}

func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}
