package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Defaults for Options fields left at zero.
const (
	DefaultMaxBulkLen    = 512 << 20 // Redis' proto-max-bulk-len default
	DefaultMaxArrayLen   = 1 << 24
	DefaultMaxDepth      = 32
	DefaultMaxLineLen    = 64 << 10
	DefaultMaxCommandLen = 1 << 30
)

// allocChunk is how much a bulk string or array may grow ahead of the bytes
// that really arrived.
const allocChunk = 64 << 10

// Options bounds what a Reader accepts. Zero fields take the Default values.
type Options struct {
	MaxBulkLen    int64 // longest bulk string, in bytes
	MaxArrayLen   int64 // most elements of one array (or map pairs*2)
	MaxDepth      int   // deepest nesting of aggregates
	MaxLineLen    int   // longest simple string, error or header line
	MaxCommandLen int64 // most bytes one command read by ReadCommand or ReadRecord may occupy

	// Annotations lets ReadRecord accept AOF annotation lines ("#...\r\n",
	// at most MaxAnnotationLen bytes) between commands.
	Annotations bool
	// KeepRaw makes ReadRecord keep each record's bytes as read in
	// Record.Raw (the arguments are then slices of it).
	KeepRaw bool
	// Lines makes ReadRecord count lines for Record.Line and
	// ProtocolError.Line (it costs a scan of every argument).
	Lines bool
	// StartOffset is the offset of the first byte read (such as the end of
	// an RDB preamble): Offset and errors count from it.
	StartOffset int64
}

func (o Options) withDefaults() Options {
	if o.MaxBulkLen <= 0 {
		o.MaxBulkLen = DefaultMaxBulkLen
	}
	if o.MaxArrayLen <= 0 {
		o.MaxArrayLen = DefaultMaxArrayLen
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxLineLen <= 0 {
		o.MaxLineLen = DefaultMaxLineLen
	}
	if o.MaxCommandLen <= 0 {
		o.MaxCommandLen = DefaultMaxCommandLen
	}
	return o
}

// ErrProtocol is wrapped by every error about malformed input.
var ErrProtocol = errors.New("resp protocol error")

// ErrLimit is wrapped by every error about input exceeding Options.
var ErrLimit = errors.New("resp limit exceeded")

// ProtocolError describes malformed or over-limit input at a byte offset
// (counted from Options.StartOffset). From ReadRecord it also describes
// input that ends inside a record (a torn tail: Err is
// io.ErrUnexpectedEOF) and gives the line.
type ProtocolError struct {
	Offset int64
	Line   int64  // 1-based line of Offset (ReadRecord with Options.Lines; newline bytes before it plus one)
	Msg    string // what was being read and why it failed
	Err    error  // ErrProtocol, ErrLimit or io.ErrUnexpectedEOF
}

func (e *ProtocolError) Error() string {
	if e.Err == io.ErrUnexpectedEOF {
		return fmt.Sprintf("resp: %s: unexpected end of input at byte %d", e.Msg, e.Offset)
	}
	return fmt.Sprintf("resp: %s at byte %d", e.Msg, e.Offset)
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// Error is an error reply from the server ("-ERR ..." or RESP3 "!").
type Error string

func (e Error) Error() string { return string(e) }

// Code is the first word of the message, such as "ERR", "NOAUTH" or
// "LOADING".
func (e Error) Code() string {
	s := string(e)
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}

// Kind is the type of a Value.
type Kind uint8

// Value kinds. RESP3 types map onto the nearest RESP2 kind where that loses
// nothing a redback caller needs (verbatim strings become KindBulk, sets and
// pushes KindArray).
const (
	KindNull      Kind = iota // $-1, *-1 or RESP3 _
	KindSimple                // +OK
	KindError                 // -ERR ..., RESP3 !
	KindInteger               // :1
	KindBulk                  // $3 foo, RESP3 = (verbatim, with its "txt:" prefix removed)
	KindArray                 // *N, RESP3 ~ (set) and > (push)
	KindMap                   // RESP3 %: Array holds key, value, key, value ...
	KindBool                  // RESP3 #: Int is 0 or 1
	KindDouble                // RESP3 ,: Str holds the text
	KindBigNumber             // RESP3 (: Str holds the digits
)

var kindNames = [...]string{"null", "simple string", "error", "integer", "bulk string", "array", "map", "boolean", "double", "big number"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one reply. Str is valid for simple strings, errors, bulk strings,
// doubles and big numbers; Int for integers and booleans; Array for arrays
// and maps.
type Value struct {
	Kind  Kind
	Str   []byte
	Int   int64
	Array []Value
}

// Err returns the reply as an Error when it is one, else nil.
func (v Value) Err() error {
	if v.Kind == KindError {
		return Error(v.Str)
	}
	return nil
}

// Text returns Str as a string.
func (v Value) Text() string { return string(v.Str) }

// Reader parses RESP from a buffered stream and counts the bytes it consumed.
type Reader struct {
	br   *bufio.Reader
	opts Options
	n    int64  // offset: StartOffset plus the bytes consumed
	line int64  // 1-based line at n (kept by ReadRecord with Options.Lines)
	slab []byte // backing store for small command arguments (ReadCommand)

	rec  Record // ReadRecord's result, reused
	buf  []byte // ReadRecord's bytes, reused
	ends []int  // ReadRecord's argument bounds in buf, reused
}

// NewReader returns a Reader over r. When r is a *bufio.Reader it is used
// directly, so the caller may interleave its own reads (the Reader only
// counts bytes it consumed itself).
func NewReader(r io.Reader, opts Options) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &Reader{br: br, opts: opts.withDefaults(), n: opts.StartOffset, line: 1}
}

// Offset is Options.StartOffset plus the number of bytes the Reader
// consumed so far.
func (r *Reader) Offset() int64 { return r.n }

func (r *Reader) errf(err error, format string, args ...any) error {
	return &ProtocolError{Offset: r.n, Line: r.line, Msg: fmt.Sprintf(format, args...), Err: err}
}

// readLine returns one line without its "\r\n". The slice is valid until the
// next read.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || (err == nil && len(line) > r.opts.MaxLineLen+2) {
		return nil, r.errf(ErrLimit, "line longer than %d bytes", r.opts.MaxLineLen)
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			r.n += int64(len(line))
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	r.n += int64(len(line))
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, r.errf(ErrProtocol, "line not terminated by CRLF")
	}
	return line[:len(line)-2], nil
}

// parseInt parses a decimal int64 strictly (optional '-', digits only).
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// readBulkBody reads n bytes plus the trailing CRLF, growing the buffer as
// bytes arrive.
func (r *Reader) readBulkBody(n int64) ([]byte, error) {
	b, err := r.readPayload(make([]byte, 0, min(n+2, allocChunk)), n, partBulk)
	if err != nil {
		return nil, streamErr(err)
	}
	return b[:n], nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadValue reads one reply. A top-level error reply is returned both as a
// Value of KindError and as a non-nil error of type Error, so callers can
// tell a server's refusal (errors.As(err, new(Error))) from a broken stream
// (anything else, such as *ProtocolError or an I/O error). Nested error
// replies (inside an EXEC result) are only Values. At a clean end of input
// ReadValue returns io.EOF; in the middle of a value, io.ErrUnexpectedEOF.
// RESP3 attributes ("|") are read and dropped.
func (r *Reader) ReadValue() (Value, error) {
	v, err := r.readValue(0)
	if err != nil {
		return Value{}, err
	}
	if v.Kind == KindError {
		return v, Error(v.Str)
	}
	return v, nil
}

func (r *Reader) readValue(depth int) (Value, error) {
	if depth > r.opts.MaxDepth {
		return Value{}, r.errf(ErrLimit, "nesting deeper than %d", r.opts.MaxDepth)
	}
	start := r.n
	line, err := r.readLine()
	if err != nil {
		if err == io.EOF && (depth > 0 || r.n != start) {
			err = io.ErrUnexpectedEOF
		}
		return Value{}, err
	}
	if len(line) == 0 {
		return Value{}, r.errf(ErrProtocol, "empty line")
	}
	typ, rest := line[0], line[1:]
	switch typ {
	case '+':
		return Value{Kind: KindSimple, Str: bytes.Clone(rest)}, nil
	case '-':
		return Value{Kind: KindError, Str: bytes.Clone(rest)}, nil
	case ',':
		return Value{Kind: KindDouble, Str: bytes.Clone(rest)}, nil
	case '(':
		return Value{Kind: KindBigNumber, Str: bytes.Clone(rest)}, nil
	case '_':
		return Value{Kind: KindNull}, nil
	case '#':
		switch string(rest) {
		case "t":
			return Value{Kind: KindBool, Int: 1}, nil
		case "f":
			return Value{Kind: KindBool, Int: 0}, nil
		}
		return Value{}, r.errf(ErrProtocol, "bad boolean %q", clip(rest))
	case ':':
		n, ok := parseInt(rest)
		if !ok {
			return Value{}, r.errf(ErrProtocol, "bad integer %q", clip(rest))
		}
		return Value{Kind: KindInteger, Int: n}, nil
	case '$', '=', '!':
		n, ok := parseInt(rest)
		if !ok || n < -1 {
			return Value{}, r.errf(ErrProtocol, "bad bulk length %q", clip(rest))
		}
		if n == -1 {
			return Value{Kind: KindNull}, nil
		}
		if n > r.opts.MaxBulkLen {
			return Value{}, r.errf(ErrLimit, "bulk string of %d bytes exceeds limit %d", n, r.opts.MaxBulkLen)
		}
		b, err := r.readBulkBody(n)
		if err != nil {
			return Value{}, err
		}
		switch typ {
		case '!':
			return Value{Kind: KindError, Str: b}, nil
		case '=':
			if len(b) >= 4 && b[3] == ':' {
				b = b[4:]
			}
		}
		return Value{Kind: KindBulk, Str: b}, nil
	case '*', '~', '>', '%', '|':
		n, ok := parseInt(rest)
		if !ok || n < -1 || (n == -1 && typ != '*') {
			return Value{}, r.errf(ErrProtocol, "bad aggregate length %q", clip(rest))
		}
		if n == -1 {
			return Value{Kind: KindNull}, nil
		}
		elems := n
		if typ == '%' || typ == '|' {
			if n > r.opts.MaxArrayLen/2 {
				return Value{}, r.errf(ErrLimit, "map of %d pairs exceeds limit", n)
			}
			elems = 2 * n
		}
		if elems > r.opts.MaxArrayLen {
			return Value{}, r.errf(ErrLimit, "array of %d elements exceeds limit %d", elems, r.opts.MaxArrayLen)
		}
		arr := make([]Value, 0, min(elems, 1024))
		for i := int64(0); i < elems; i++ {
			v, err := r.readValue(depth + 1)
			if err != nil {
				return Value{}, unexpected(err)
			}
			arr = append(arr, v)
		}
		switch typ {
		case '|':
			// An attribute precedes the real reply; drop it.
			return r.readValue(depth)
		case '%':
			return Value{Kind: KindMap, Array: arr}, nil
		}
		return Value{Kind: KindArray, Array: arr}, nil
	}
	return Value{}, r.errf(ErrProtocol, "unknown type byte %q", typ)
}

// clip shortens untrusted text quoted in errors.
func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// IsName reports whether arg is name, ignoring ASCII case: how Redis
// matches command and subcommand names.
func IsName(arg []byte, name string) bool {
	if len(arg) != len(name) {
		return false
	}
	for i := range len(arg) {
		a, b := arg[i], name[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}
