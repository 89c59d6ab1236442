//lint:file-ignore ST1005 the manifest errors are Redis's own messages, capitals included, so users can search for them

package aof

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"redback/internal/resp"
)

// FileType is the type of a file listed in a manifest.
type FileType byte

// Manifest file types.
const (
	TypeBase    FileType = 'b'
	TypeHistory FileType = 'h'
	TypeIncr    FileType = 'i'
)

// ManifestLineMax is the longest manifest line Redis reads (MANIFEST_MAX_LINE).
const ManifestLineMax = 1024

// ManifestFile is one line of a manifest.
type ManifestFile struct {
	Name string
	Seq  int64
	Type FileType
}

// Manifest is a multi-part AOF manifest (Redis 7.0+): at most one base
// file, history files and incr files, as Redis keeps them in memory.
type Manifest struct {
	Base    *ManifestFile
	History []ManifestFile
	Incr    []ManifestFile // in load order, seq strictly increasing
}

// LoadOrder lists the files Redis loads, in order: the base, then the incr files.
func (m *Manifest) LoadOrder() []ManifestFile {
	var out []ManifestFile
	if m.Base != nil {
		out = append(out, *m.Base)
	}
	return append(out, m.Incr...)
}

// Manifest errors, wrapped by ManifestSyntaxError with Redis's own wording.
var (
	ErrManifestEmpty       = errors.New("Found an empty AOF manifest")
	ErrManifestLineTooLong = errors.New("The AOF manifest file contains too long line")
	ErrManifestFormat      = errors.New("Invalid AOF manifest file format")
	ErrManifestPath        = errors.New("File can't be a path, just a filename")
	ErrManifestDupBase     = errors.New("Found duplicate base file information")
	ErrManifestSeq         = errors.New("Found a non-monotonic sequence number")
	ErrManifestType        = errors.New("Unknown AOF file type")
)

// ParseManifest reads a manifest with the rules of aofLoadManifestFromFile
// (Redis 7.0): lines are read 1024 bytes at a time and each must end in
// '\n'; lines starting with '#' are comments; a line is trimmed of
// " \t\r\n" and split with sdssplitargs rules (quoted names); it needs at
// least 6 tokens and an even number; keys are case-insensitive; unknown
// keys are ignored; file, seq (non-zero, atoll) and type are required; the
// name must not contain '/' or '\\'; one base at most; incr seq strictly
// increasing from above 0; types b, h, i. Errors are *ManifestSyntaxError.
func ParseManifest(r io.Reader) (*Manifest, error) {
	m := &Manifest{}
	br := bufio.NewReaderSize(r, 4096)
	linenum := 0
	var maxseq int64
	buf := make([]byte, 0, ManifestLineMax)
	for {
		// fgets(buf, MANIFEST_MAX_LINE+1): up to 1024 bytes, through '\n'.
		buf = buf[:0]
		var rerr error
		for len(buf) < ManifestLineMax {
			c, err := br.ReadByte()
			if err != nil {
				rerr = err
				break
			}
			buf = append(buf, c)
			if c == '\n' {
				break
			}
		}
		if rerr != nil && rerr != io.EOF {
			return nil, &ManifestSyntaxError{Err: fmt.Errorf("read manifest: %w", rerr)}
		}
		if len(buf) == 0 {
			if linenum == 0 {
				return nil, &ManifestSyntaxError{Err: ErrManifestEmpty}
			}
			return m, nil
		}
		linenum++
		if buf[0] == '#' {
			continue
		}
		cs := cstr(buf)
		if bytes.IndexByte(cs, '\n') < 0 {
			return nil, &ManifestSyntaxError{Line: linenum, Text: string(bytes.Trim(cs, " \t\r\n")), Err: ErrManifestLineTooLong}
		}
		line := bytes.Trim(cs, " \t\r\n")
		merr := func(err error) error { return &ManifestSyntaxError{Line: linenum, Text: string(line), Err: err} }
		if len(line) == 0 {
			return nil, merr(ErrManifestFormat)
		}
		argv, ok := SplitArgs(line)
		if !ok || len(argv) < 6 || len(argv)%2 != 0 {
			return nil, merr(ErrManifestFormat)
		}
		var f ManifestFile
		var haveName bool
		for i := 0; i < len(argv); i += 2 {
			k, v := cstr(argv[i]), argv[i+1]
			switch {
			case resp.IsName(k, "file"):
				name := cstr(v)
				f.Name, haveName = string(name), true
				if bytes.ContainsAny(name, "/\\") {
					return nil, merr(ErrManifestPath)
				}
			case resp.IsName(k, "seq"):
				f.Seq = atoll(cstr(v))
			case resp.IsName(k, "type"):
				if len(v) > 0 {
					f.Type = FileType(v[0])
				} else {
					f.Type = 0
				}
			}
		}
		if !haveName || f.Seq == 0 || f.Type == 0 {
			return nil, merr(ErrManifestFormat)
		}
		switch f.Type {
		case TypeBase:
			if m.Base != nil {
				return nil, merr(ErrManifestDupBase)
			}
			b := f
			m.Base = &b
		case TypeHistory:
			m.History = append(m.History, f)
		case TypeIncr:
			if f.Seq <= maxseq {
				return nil, merr(ErrManifestSeq)
			}
			m.Incr = append(m.Incr, f)
			maxseq = f.Seq
		default:
			return nil, merr(ErrManifestType)
		}
	}
}

// cstr cuts b at its first NUL byte, as C string functions see it.
func cstr(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// cIsSpace is C's isspace in the "C" locale.
func cIsSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// atoll is glibc's atoll: leading space, a sign, decimal digits; 0 when
// there are none; saturates on overflow.
func atoll(b []byte) int64 {
	v, _, _ := strtol(b)
	return v
}

// strtol is C's strtol(s, &end, 10) on a C string: it returns the value,
// the index of end and whether it overflowed (ERANGE).
func strtol(b []byte) (int64, int, bool) {
	i := 0
	for i < len(b) && cIsSpace(b[i]) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	start := i
	var v uint64
	over := false
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		if !over {
			v = v*10 + uint64(b[i]-'0')
			if v > 1<<63 {
				over = true
			}
		}
		i++
	}
	if i == start {
		return 0, 0, false
	}
	switch {
	case neg && (over || v > 1<<63):
		return -1 << 63, i, true
	case neg:
		return int64(-v), i, false
	case over || v > 1<<63-1:
		return 1<<63 - 1, i, true
	}
	return int64(v), i, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

// SplitArgs splits line like Redis's sdssplitargs: blanks separate tokens,
// "double quotes" take \xHH, \n, \r, \t, \b, \a and \<c> escapes, 'single
// quotes' take \'; a closing quote must be followed by a blank or the end.
// ok is false for unbalanced quotes. line is read as a C string (up to its
// first NUL).
func SplitArgs(line []byte) (args [][]byte, ok bool) {
	p := cstr(line)
	at := func(i int) byte {
		if i < len(p) {
			return p[i]
		}
		return 0
	}
	i := 0
	for {
		for i < len(p) && cIsSpace(p[i]) {
			i++
		}
		if i >= len(p) {
			return args, true
		}
		var cur []byte
		inq, insq, done := false, false, false
		for !done {
			c := at(i)
			switch {
			case inq:
				switch {
				case c == '\\' && at(i+1) == 'x' && isHex(at(i+2)) && isHex(at(i+3)):
					cur = append(cur, hexVal(at(i+2))*16+hexVal(at(i+3)))
					i += 3
				case c == '\\' && at(i+1) != 0:
					i++
					e := at(i)
					switch e {
					case 'n':
						e = '\n'
					case 'r':
						e = '\r'
					case 't':
						e = '\t'
					case 'b':
						e = '\b'
					case 'a':
						e = '\a'
					}
					cur = append(cur, e)
				case c == '"':
					if n := at(i + 1); n != 0 && !cIsSpace(n) {
						return nil, false
					}
					done = true
				case c == 0:
					return nil, false
				default:
					cur = append(cur, c)
				}
			case insq:
				switch {
				case c == '\\' && at(i+1) == '\'':
					i++
					cur = append(cur, '\'')
				case c == '\'':
					if n := at(i + 1); n != 0 && !cIsSpace(n) {
						return nil, false
					}
					done = true
				case c == 0:
					return nil, false
				default:
					cur = append(cur, c)
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					cur = append(cur, c)
				}
			}
			if at(i) != 0 {
				i++
			}
		}
		if cur == nil {
			cur = []byte{}
		}
		args = append(args, cur)
	}
}

// needsRepr is sdsneedsrepr.
func needsRepr(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' || c == '"' || !cIsPrint(c) || cIsSpace(c) {
			return true
		}
	}
	return false
}

func cIsPrint(c byte) bool { return c >= 0x20 && c < 0x7f }

// Repr quotes s as Redis's sdscatrepr does.
func Repr(s string) string {
	b := []byte{'"'}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\a':
			b = append(b, '\\', 'a')
		case '\b':
			b = append(b, '\\', 'b')
		default:
			if cIsPrint(c) {
				b = append(b, c)
			} else {
				b = fmt.Appendf(b, "\\x%02x", c)
			}
		}
	}
	return string(append(b, '"'))
}

// WriteTo writes the manifest as Redis does (getAofManifestAsString): the
// base, then history, then incr files, one "file <name> seq <n> type <t>\n"
// line each, names that need it quoted with sdscatrepr.
func (m *Manifest) WriteTo(w io.Writer) (int64, error) {
	var b []byte
	line := func(f ManifestFile) {
		name := f.Name
		if needsRepr(name) {
			name = Repr(name)
		}
		b = fmt.Appendf(b, "file %s seq %s type %c\n", name, strconv.FormatInt(f.Seq, 10), byte(f.Type))
	}
	if m.Base != nil {
		line(*m.Base)
	}
	for _, f := range m.History {
		line(f)
	}
	for _, f := range m.Incr {
		line(f)
	}
	n, err := w.Write(b)
	return int64(n), err
}
