package resp

import (
	"bufio"
	"io"
	"strconv"
)

// AppendCommand appends args encoded as a RESP array of bulk strings to buf
// and returns the extended slice.
func AppendCommand(buf []byte, args ...[]byte) []byte {
	buf = AppendArrayHeader(buf, len(args))
	for _, a := range args {
		buf = AppendBulk(buf, a)
	}
	return buf
}

// AppendCommandString is AppendCommand for string arguments.
func AppendCommandString(buf []byte, args ...string) []byte {
	buf = AppendArrayHeader(buf, len(args))
	for _, a := range args {
		buf = AppendBulkString(buf, a)
	}
	return buf
}

// AppendArrayHeader appends "*n\r\n".
func AppendArrayHeader(buf []byte, n int) []byte {
	buf = append(buf, '*')
	buf = strconv.AppendInt(buf, int64(n), 10)
	return append(buf, '\r', '\n')
}

// AppendBulk appends b as a bulk string.
func AppendBulk(buf, b []byte) []byte {
	buf = append(buf, '$')
	buf = strconv.AppendInt(buf, int64(len(b)), 10)
	buf = append(buf, '\r', '\n')
	buf = append(buf, b...)
	return append(buf, '\r', '\n')
}

// AppendBulkString appends s as a bulk string.
func AppendBulkString(buf []byte, s string) []byte {
	buf = append(buf, '$')
	buf = strconv.AppendInt(buf, int64(len(s)), 10)
	buf = append(buf, '\r', '\n')
	buf = append(buf, s...)
	return append(buf, '\r', '\n')
}

// CommandLen is the number of bytes AppendCommand would write for args.
func CommandLen(args ...[]byte) int64 {
	n := int64(1 + decimalLen(len(args)) + 2)
	for _, a := range args {
		n += int64(1 + decimalLen(len(a)) + 2 + len(a) + 2)
	}
	return n
}

func decimalLen(n int) int {
	l := 1
	for n >= 10 {
		n /= 10
		l++
	}
	return l
}

// Writer writes commands through a buffer. It is not safe for concurrent
// use. Call Flush to send what is buffered.
type Writer struct {
	bw  *bufio.Writer
	buf []byte
}

// NewWriter returns a Writer over w with a 64 KiB buffer.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 64<<10)}
}

// WriteCommand buffers one command.
func (w *Writer) WriteCommand(args ...[]byte) error {
	w.buf = AppendCommand(w.buf[:0], args...)
	_, err := w.bw.Write(w.buf)
	if cap(w.buf) > 1<<20 {
		w.buf = nil // do not pin a huge command's buffer
	}
	return err
}

// WriteCommandString buffers one command given as strings.
func (w *Writer) WriteCommandString(args ...string) error {
	w.buf = AppendCommandString(w.buf[:0], args...)
	_, err := w.bw.Write(w.buf)
	if cap(w.buf) > 1<<20 {
		w.buf = nil
	}
	return err
}

// Buffered is the number of bytes written but not yet flushed.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

// Flush writes any buffered bytes to the underlying writer.
func (w *Writer) Flush() error { return w.bw.Flush() }
