package pitr

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"redback/internal/aof"
)

// Limits of segReader: the AOF reader's (aof.DefaultMaxArgBytes,
// aof.DefaultMaxArgs, aof.MaxAnnotationLen), and these.
const (
	maxHeader = 32      // "*<digits>\r\n" / "$<digits>\r\n"
	readChunk = 1 << 20 // the most one read grows the buffer by
)

// segReader reads the records of a segment's AOF (RESP commands and '#'
// annotation lines) with their raw bytes, reusing one buffer: the replay
// writes the raw bytes as they are instead of re-encoding them, and
// nothing is allocated per command once the buffer has grown. A declared
// length allocates only as its bytes arrive.
type segReader struct {
	br   *bufio.Reader
	off  int64 // offset of the next record
	raw  []byte
	args [][]byte
	ends []int
}

var errSegTruncated = errors.New("unexpected end of segment")

// next reads one record. It returns io.EOF at a clean end. raw and args are
// valid until the next call.
func (s *segReader) next() (annotation bool, err error) {
	b, err := s.br.Peek(1)
	if err == io.EOF {
		return false, io.EOF
	}
	if err != nil {
		return false, err
	}
	s.raw = s.raw[:0]
	switch b[0] {
	case '#':
		line, err := s.line(aof.MaxAnnotationLen)
		if err != nil {
			return false, err
		}
		s.raw = append(s.raw, line...)
		s.off += int64(len(s.raw))
		return true, nil
	case '*':
	default:
		return false, fmt.Errorf("expected '*' or '#', got %q", b[0])
	}
	argc, err := s.header('*', aof.DefaultMaxArgs)
	if err != nil {
		return false, err
	}
	if argc == 0 {
		return false, errors.New("command with 0 arguments")
	}
	s.ends = s.ends[:0]
	for i := int64(0); i < argc; i++ {
		n, err := s.header('$', aof.DefaultMaxArgBytes)
		if err != nil {
			return false, err
		}
		start := len(s.raw)
		for left := n + 2; left > 0; {
			c := min(left, readChunk)
			s.raw = slices.Grow(s.raw, int(c))
			got, err := io.ReadFull(s.br, s.raw[len(s.raw):len(s.raw)+int(c)])
			s.raw = s.raw[:len(s.raw)+got]
			if err != nil {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					return false, errSegTruncated
				}
				return false, err
			}
			left -= c
		}
		if s.raw[len(s.raw)-2] != '\r' || s.raw[len(s.raw)-1] != '\n' {
			return false, errors.New("argument not followed by CRLF")
		}
		s.ends = append(s.ends, start, start+int(n))
	}
	s.args = s.args[:0]
	for i := 0; i < len(s.ends); i += 2 {
		s.args = append(s.args, s.raw[s.ends[i]:s.ends[i+1]:s.ends[i+1]])
	}
	s.off += int64(len(s.raw))
	return false, nil
}

// line reads a line ending in "\r\n" of at most max bytes (CRLF included).
func (s *segReader) line(max int) ([]byte, error) {
	l, err := s.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull || len(l) > max:
		return nil, fmt.Errorf("line longer than %d bytes", max)
	case err == io.EOF:
		return nil, errSegTruncated
	case err != nil:
		return nil, err
	case len(l) < 2 || l[len(l)-2] != '\r':
		return nil, errors.New("line not ended by CRLF")
	}
	return l, nil
}

// header reads "<prefix><n>\r\n" into raw and returns n.
func (s *segReader) header(prefix byte, max int64) (int64, error) {
	l, err := s.line(maxHeader)
	if err != nil {
		return 0, err
	}
	if l[0] != prefix {
		return 0, fmt.Errorf("expected '%c', got %q", prefix, l)
	}
	n, err := strconv.ParseInt(string(l[1:len(l)-2]), 10, 64)
	if err != nil || n < 0 || n > max {
		return 0, fmt.Errorf("bad length %q", l[1:len(l)-2])
	}
	s.raw = append(s.raw, l...)
	return n, nil
}
