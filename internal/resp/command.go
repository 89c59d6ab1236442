package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Limits of command framing, the same for the replication stream, AOF
// files and the shipped log.
const (
	// MaxAnnotationLen is the longest AOF annotation line, CRLF included
	// (Redis's AOF_ANNOTATION_LINE_MAX_LEN).
	MaxAnnotationLen = 1024
	// maxHeaderLen is the longest "*<n>\r\n" or "$<n>\r\n" line: a prefix,
	// a sign and 19 digits, CRLF, and room to spare.
	maxHeaderLen = 32

	smallArg = 256 // ReadCommand carves arguments up to this size from a slab
	slabSize = 16 << 10
)

// Record is one entry of a command log read by ReadRecord: a command or an
// annotation line. Its slices are valid until the next ReadRecord.
type Record struct {
	Annotation bool     // an annotation line ("#...\r\n"), not a command
	Offset     int64    // offset of its first byte ('*' or '#')
	Line       int64    // 1-based line of its first byte, with Options.Lines
	Size       int64    // bytes it occupies, framing included
	Args       [][]byte // a command's arguments
	Text       []byte   // an annotation: the line without '#' and CRLF
	Raw        []byte   // with Options.KeepRaw: its bytes as read
}

// ReadRecord reads the next command of a log (an AOF file or the shipped
// log), or, with Options.Annotations, an annotation line. It returns io.EOF
// at a clean end. Malformed, over-limit and torn input (the input ends
// inside a record; Err is io.ErrUnexpectedEOF) is a *ProtocolError with the
// offset and line of the element at fault. Other read errors are returned
// as they are. Arguments are cut from one buffer the Reader reuses: nothing
// is allocated per command once it has grown, and a declared length
// allocates only as its bytes arrive.
func (r *Reader) ReadRecord() (*Record, error) {
	if err := r.readRecord(false); err != nil {
		return nil, err
	}
	return &r.rec, nil
}

// ReadCommand reads one command in array form ("*N\r\n" then N bulk
// strings) and returns its arguments and the exact number of bytes it
// occupied in the stream. Each argument is a fresh slice the caller may keep.
// At a clean end of input it returns io.EOF; inside a command,
// io.ErrUnexpectedEOF. Inline commands, empty arrays and non-bulk elements
// are *ProtocolError; a command larger than Options.MaxCommandLen is a
// *ProtocolError wrapping ErrLimit.
func (r *Reader) ReadCommand() (args [][]byte, n int64, err error) {
	if err := r.readRecord(true); err != nil {
		return nil, 0, streamErr(err)
	}
	return r.rec.Args, r.rec.Size, nil
}

// ReadCommandShared is ReadCommand with the arguments cut from one buffer
// the Reader reuses, valid only until the next read: nothing is allocated
// per command once the buffer has grown. A buffer grown past
// sharedBufMax (by a big command) is let go at the next read, so a
// stream's largest command is not held for the rest of its life.
func (r *Reader) ReadCommandShared() (args [][]byte, n int64, err error) {
	if cap(r.buf) > sharedBufMax {
		r.buf = nil
	}
	if err := r.readRecord(false); err != nil {
		return nil, 0, streamErr(err)
	}
	return r.rec.Args, r.rec.Size, nil
}

// sharedBufMax is the largest buffer ReadCommandShared keeps between reads.
const sharedBufMax = 1 << 20

// streamErr turns a torn-input *ProtocolError into io.ErrUnexpectedEOF:
// on a stream the peer went away, the data is not malformed.
func streamErr(err error) error {
	var pe *ProtocolError
	if errors.As(err, &pe) && pe.Err == io.ErrUnexpectedEOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// part names what is being read, in errors: an argument's number (from 1),
// or one of the parts below.
type part int64

const (
	partCommand    part = 0
	partAnnotation part = -1
	partBulk       part = -2
)

func (p part) String() string {
	switch p {
	case partCommand:
		return "command"
	case partAnnotation:
		return "annotation"
	case partBulk:
		return "bulk string"
	}
	return fmt.Sprintf("argument %d", int64(p))
}

func (r *Reader) failAt(off, line int64, err error, format string, args ...any) error {
	return &ProtocolError{Offset: off, Line: line, Msg: fmt.Sprintf(format, args...), Err: err}
}

// readRecord reads a record into r.rec. With fresh, it reads only a
// command, into slices the caller may keep (ReadCommand); else into r.buf.
func (r *Reader) readRecord(fresh bool) error {
	b, err := r.br.Peek(1)
	if err != nil {
		return err // io.EOF at a record boundary is a clean end
	}
	rec := &r.rec
	args := rec.Args[:0]
	if fresh {
		args = nil
	}
	*rec = Record{Offset: r.n, Line: r.line, Args: args}
	r.buf = r.buf[:0]
	switch {
	case b[0] == '#' && r.opts.Annotations && !fresh:
		return r.readAnnotation()
	case b[0] != '*':
		if r.opts.Annotations && !fresh {
			return r.failAt(r.n, r.line, ErrProtocol, "expected '*' or '#', got %q", b[0])
		}
		return r.failAt(r.n, r.line, ErrProtocol, "expected a command array ('*'), got %q", b[0])
	}
	argc, err := r.readHeader('*', r.opts.MaxArrayLen, partCommand)
	if err != nil {
		return err
	}
	if argc == 0 {
		return r.failAt(rec.Offset, rec.Line, ErrProtocol, "command with 0 arguments")
	}
	if fresh {
		rec.Args = make([][]byte, 0, min(argc, 1024))
	}
	r.ends = r.ends[:0]
	for i := int64(1); i <= argc; i++ {
		n, err := r.readHeader('$', r.opts.MaxBulkLen, part(i))
		if err != nil {
			return err
		}
		if r.n-rec.Offset+n+2 > r.opts.MaxCommandLen {
			return r.failAt(r.n, r.line, ErrLimit, "command longer than limit %d bytes", r.opts.MaxCommandLen)
		}
		if !fresh {
			start := len(r.buf)
			if r.buf, err = r.readPayload(r.buf, n, part(i)); err != nil {
				return err
			}
			if !r.opts.KeepRaw {
				r.buf = r.buf[:len(r.buf)-2]
			}
			r.ends = append(r.ends, start, start+int(n))
			continue
		}
		var arg []byte
		if n <= smallArg {
			// Small arguments are carved from a shared slab; each is
			// capped so a caller's append cannot clobber its neighbour.
			if cap(r.slab)-len(r.slab) < int(n)+2 {
				r.slab = make([]byte, 0, slabSize)
			}
			arg, err = r.readPayload(r.slab[len(r.slab):len(r.slab):len(r.slab)+int(n)+2], n, part(i))
			r.slab = r.slab[:len(r.slab)+len(arg)]
		} else {
			arg, err = r.readPayload(make([]byte, 0, min(n+2, allocChunk)), n, part(i))
		}
		if err != nil {
			return err
		}
		rec.Args = append(rec.Args, arg[:n:n])
	}
	// Arguments are cut from r.buf only now: its growth moved them.
	for i := 0; i < len(r.ends); i += 2 {
		rec.Args = append(rec.Args, r.buf[r.ends[i]:r.ends[i+1]:r.ends[i+1]])
	}
	if r.opts.KeepRaw {
		rec.Raw = r.buf
	}
	rec.Size = r.n - rec.Offset
	return nil
}

func (r *Reader) readAnnotation() error {
	rec := &r.rec
	l, err := r.readLogLine(MaxAnnotationLen, partAnnotation)
	if err != nil {
		return err
	}
	r.buf = append(r.buf[:0], l...)
	rec.Annotation = true
	rec.Text = r.buf[1 : len(r.buf)-2]
	if r.opts.KeepRaw {
		rec.Raw = r.buf
	}
	rec.Size = r.n - rec.Offset
	return nil
}

// readLogLine reads a line of at most max bytes (CRLF included) inside a
// record and returns it with its CRLF; it is valid until the next read.
// With KeepRaw, a header line is also appended to r.buf.
func (r *Reader) readLogLine(max int, p part) ([]byte, error) {
	off, line := r.n, r.line
	l, err := r.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull || len(l) > max:
		return nil, r.failAt(off, line, ErrLimit, "%s line longer than %d bytes", p, max)
	case err == io.EOF:
		return nil, r.failAt(off, line, io.ErrUnexpectedEOF, "%s", p)
	case err != nil:
		return nil, err
	case len(l) < 2 || l[len(l)-2] != '\r':
		return nil, r.failAt(off, line, ErrProtocol, "%s line does not end in \\r\\n", p)
	}
	r.n += int64(len(l))
	r.line++
	return l, nil
}

// readHeader reads "<prefix><n>\r\n" with 0 <= n <= max.
func (r *Reader) readHeader(prefix byte, max int64, p part) (int64, error) {
	off, line := r.n, r.line
	l, err := r.readLogLine(maxHeaderLen, p)
	if err != nil {
		return 0, err
	}
	if r.opts.KeepRaw {
		r.buf = append(r.buf, l...)
	}
	l = l[:len(l)-2]
	if len(l) == 0 || l[0] != prefix {
		return 0, r.failAt(off, line, ErrProtocol, "%s: expected '%c', got %q", p, prefix, clip(l))
	}
	n, ok := parseInt(l[1:])
	if !ok || n < 0 {
		return 0, r.failAt(off, line, ErrProtocol, "%s: invalid length %q", p, clip(l[1:]))
	}
	if n > max {
		return 0, r.failAt(off, line, ErrLimit, "%s: length %d exceeds limit %d", p, n, max)
	}
	return n, nil
}

// readPayload appends n bytes and their CRLF to dst, growing it as the
// bytes arrive, and counts the newlines among them.
func (r *Reader) readPayload(dst []byte, n int64, p part) ([]byte, error) {
	off, line := r.n, r.line
	start := len(dst)
	for left := n + 2; left > 0; {
		c := min(left, allocChunk)
		dst = slices.Grow(dst, int(c))
		got, err := io.ReadFull(r.br, dst[len(dst):len(dst)+int(c)])
		dst = dst[:len(dst)+got]
		r.n += int64(got)
		if err != nil {
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				return nil, err
			}
			if int64(len(dst)-start) < n {
				return nil, r.failAt(off, line, io.ErrUnexpectedEOF, "%s (%d bytes)", p, n)
			}
			return nil, r.failAt(off+n, line+r.lines(dst[start:start+int(n)]), io.ErrUnexpectedEOF, "%s", p)
		}
		left -= c
	}
	r.line += r.lines(dst[start : start+int(n)])
	if crlf := dst[len(dst)-2:]; crlf[0] != '\r' || crlf[1] != '\n' {
		return nil, r.failAt(off+n, r.line, ErrProtocol, "%s: not terminated by \\r\\n after %d bytes (got %q)", p, n, crlf)
	}
	r.line++
	return dst, nil
}

// lines counts the newlines in b, with Options.Lines.
func (r *Reader) lines(b []byte) int64 {
	if !r.opts.Lines {
		return 0
	}
	return int64(bytes.Count(b, []byte{'\n'}))
}
