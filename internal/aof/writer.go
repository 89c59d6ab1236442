package aof

import (
	"bufio"
	"errors"
	"io"
	"strconv"
)

// ErrEmptyCommand is returned by WriteCommand without arguments.
var ErrEmptyCommand = errors.New("aof: command without arguments")

// Writer writes AOF records: commands as RESP arrays of bulk strings,
// SELECT whenever the db of the next command differs from the last one
// written, and #TS:<unix> annotations. redis-server and redis-check-aof
// load what it writes. Call Flush at the end.
type Writer struct {
	bw      *bufio.Writer
	db      int // db of the next command
	written int // db selected in the output, -1 before the first SELECT
	off     int64
	scratch []byte
}

// NewWriter returns a Writer whose first command is preceded by SELECT 0
// (or the db given to SetDB), as Redis starts every incr file.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 64<<10), written: -1}
}

// SetDB sets the db of the following commands; a SELECT is written before
// the next command when it differs from the db last selected.
func (w *Writer) SetDB(db int) { w.db = db }

// DB is the db of the following commands.
func (w *Writer) DB() int { return w.db }

// Offset is the number of bytes written so far (buffered ones included).
func (w *Writer) Offset() int64 { return w.off }

// WriteCommand writes one command (a SELECT first when the db changed).
// A SELECT command given here updates the current db itself.
func (w *Writer) WriteCommand(args ...[]byte) error {
	if len(args) == 0 {
		return ErrEmptyCommand
	}
	if len(args) == 2 && isSelect(args[0]) {
		if n, err := strconv.Atoi(string(args[1])); err == nil {
			w.db = n
			w.written = n
			return w.write(args)
		}
	}
	if w.written != w.db {
		if err := w.write([][]byte{[]byte("SELECT"), []byte(strconv.Itoa(w.db))}); err != nil {
			return err
		}
		w.written = w.db
	}
	return w.write(args)
}

func isSelect(b []byte) bool {
	if len(b) != 6 {
		return false
	}
	for i, c := range []byte("select") {
		if b[i]|0x20 != c {
			return false
		}
	}
	return true
}

func (w *Writer) write(args [][]byte) error {
	s := w.scratch[:0]
	s = append(s, '*')
	s = strconv.AppendInt(s, int64(len(args)), 10)
	s = append(s, '\r', '\n')
	for _, a := range args {
		s = append(s, '$')
		s = strconv.AppendInt(s, int64(len(a)), 10)
		s = append(s, '\r', '\n')
		if len(s)+len(a) > 64<<10 {
			if err := w.put(s); err != nil {
				return err
			}
			if err := w.put(a); err != nil {
				return err
			}
			s = s[:0]
		} else {
			s = append(s, a...)
		}
		s = append(s, '\r', '\n')
	}
	w.scratch = s[:0]
	return w.put(s)
}

func (w *Writer) put(p []byte) error {
	n, err := w.bw.Write(p)
	w.off += int64(n)
	return err
}

// WriteTimestamp writes the annotation "#TS:<unix>\r\n".
func (w *Writer) WriteTimestamp(unix int64) error {
	s := append(w.scratch[:0], "#TS:"...)
	s = strconv.AppendInt(s, unix, 10)
	s = append(s, '\r', '\n')
	w.scratch = s[:0]
	return w.put(s)
}

// Flush writes buffered data to the underlying writer.
func (w *Writer) Flush() error { return w.bw.Flush() }
