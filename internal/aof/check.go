package aof

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"redback/internal/resp"
)

// InputKind is what Check found at the path it was given, detected as
// redis-check-aof 7.0 does.
type InputKind int

// Input kinds.
const (
	InputRESP        InputKind = iota + 1 // a plain RESP AOF
	InputRDBPreamble                      // a file starting with "REDIS": RDB, then a RESP tail
	InputManifest                         // a multi-part AOF manifest
)

func (k InputKind) String() string {
	switch k {
	case InputRESP:
		return "resp"
	case InputRDBPreamble:
		return "rdb-preamble"
	case InputManifest:
		return "manifest"
	}
	return "unknown"
}

// Damage classifies what is wrong with a file.
type Damage int

// Damage classes.
const (
	DamageNone Damage = iota
	// DamageTornTail: the file ends inside a command or inside an
	// unfinished MULTI, and nothing complete follows the break. Truncating
	// to OKUpTo loses only that partial tail; Redis does the same at load
	// with aof-load-truncated yes.
	DamageTornTail
	// DamageCorrupt: bytes that are not valid AOF in the middle (format
	// error, bad length, missing CRLF, unexpected MULTI/EXEC, a bad RDB
	// preamble). Truncating to OKUpTo would also discard whatever valid
	// commands follow the damage.
	DamageCorrupt
)

func (d Damage) String() string {
	switch d {
	case DamageNone:
		return "none"
	case DamageTornTail:
		return "torn-tail"
	case DamageCorrupt:
		return "corrupt"
	}
	return "unknown"
}

// CheckOptions say what Check may change. The zero value only reads.
type CheckOptions struct {
	// Fix truncates the last file to OKUpTo when its damage is a torn
	// tail, exactly as redis-check-aof --fix does (without asking).
	Fix bool
	// FixCorruption, with Fix, also truncates the last file at corruption
	// in its middle, discarding everything after OKUpTo (redis-check-aof
	// --fix does this too). Without it such a file is reported, not changed.
	FixCorruption bool
	// TruncateToTimestamp, when non-zero, cuts the last file at the first
	// "#TS:" annotation greater than it, as redis-check-aof
	// --truncate-to-timestamp does (0 means off there too).
	TruncateToTimestamp int64
}

// FileReport is the verdict on one file, with the numbers redis-check-aof
// prints ("AOF analyzed: filename=, size=, ok_up_to=, ok_up_to_line=, diff=").
type FileReport struct {
	Name   string `json:"name"` // as listed in the manifest, or the path given
	Path   string `json:"path"`
	Role   string `json:"role"`   // "base", "incr" or "aof"
	Format string `json:"format"` // "resp" or "rdb"
	Last   bool   `json:"last"`   // the last file of the set (the only one that may be truncated)
	Empty  bool   `json:"empty"`

	Size int64 `json:"size"`
	// OKUpTo is the offset up to which the file is valid; the truncation
	// point of a fix. OKUpToLine is redis-check-aof's line counter (RESP
	// lines read, counted across the files of a set, annotations not
	// counted), reproduced for comparison.
	OKUpTo     int64 `json:"ok_up_to"`
	OKUpToLine int64 `json:"ok_up_to_line"`
	Diff       int64 `json:"diff"`

	Damage Damage           `json:"-"`
	Err    *CorruptionError `json:"-"` // where and why, when Damage != DamageNone
	// ToolMessage is the error line redis-check-aof prints, when it prints one.
	ToolMessage string `json:"tool_message,omitempty"`
	// LostCommands counts the commands (complete or not) that start at or
	// after OKUpTo, found by their "*N\r\n" headers at line starts: what a
	// truncation to OKUpTo discards. Past corruption it is an estimate.
	LostCommands int64 `json:"lost_commands"`

	Fixed                bool  `json:"fixed"`                  // truncated to OKUpTo by this check
	TruncatedToTimestamp bool  `json:"truncated_to_timestamp"` // cut at a #TS annotation
	TruncatedAt          int64 `json:"truncated_at,omitempty"` // new size after a timestamp cut
}

// Valid reports whether the file had no damage (or was fixed).
func (f *FileReport) Valid() bool { return f.Damage == DamageNone || f.Fixed }

// Report is the result of Check.
type Report struct {
	Path     string       `json:"path"`
	Kind     InputKind    `json:"-"`
	Manifest *Manifest    `json:"-"`
	Files    []FileReport `json:"files"` // checked files in load order; checking stops after the first damaged one
	// Unchecked lists manifest files not checked because an earlier one
	// was damaged.
	Unchecked []string `json:"unchecked,omitempty"`
}

// Valid reports whether every file is valid (possibly after a fix).
func (r *Report) Valid() bool {
	for i := range r.Files {
		if !r.Files[i].Valid() {
			return false
		}
	}
	return len(r.Unchecked) == 0
}

// Damaged returns the first damaged, unfixed file, or nil.
func (r *Report) Damaged() *FileReport {
	for i := range r.Files {
		if !r.Files[i].Valid() {
			return &r.Files[i]
		}
	}
	return nil
}

// DetectKind tells a manifest, an RDB-preamble AOF and a plain RESP AOF
// apart exactly as redis-check-aof does: a manifest has a line (as read
// 1024 bytes at a time) starting with "file" that is not a comment; an
// RDB starts with "REDIS" and is at least 8 bytes long.
func DetectKind(path string) (InputKind, error) {
	m, err := looksLikeManifest(path)
	if err != nil {
		return 0, err
	}
	if m {
		return InputManifest, nil
	}
	r, err := looksLikeRDB(path)
	if err != nil {
		return 0, err
	}
	if r {
		return InputRDBPreamble, nil
	}
	return InputRESP, nil
}

func looksLikeManifest(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var head [4]byte
	n, chunk := 0, 0 // bytes of head captured, bytes in the current fgets chunk
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", path, err)
		}
		if chunk < 4 {
			head[chunk] = c
			n = chunk + 1
		}
		chunk++
		if n == 4 && chunk == 4 && string(head[:]) == "file" {
			return true, nil
		}
		if c == '\n' || chunk == ManifestLineMax {
			chunk, n = 0, 0
		}
	}
}

func looksLikeRDB(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	if st.Size() < 8 {
		return false, nil
	}
	var sig [5]byte
	if _, err := io.ReadFull(f, sig[:]); err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return string(sig[:]) == "REDIS", nil
}

// Check checks an AOF file, an RDB-preamble AOF or a manifest (and every
// base and incr file it lists, in the manifest's directory) the way
// redis-check-aof 7.0.15 does, and applies opts. Damage is in the Report;
// the error is for what stops the check: I/O errors, a bad manifest
// (*ManifestSyntaxError), a missing listed file, an invalid #TS annotation in
// truncate mode (*CorruptionError) or an impossible timestamp cut
// (*TimestampError).
func Check(path string, opts CheckOptions) (*Report, error) {
	if opts.Fix && opts.TruncateToTimestamp != 0 {
		return nil, errors.New("fix and truncate-to-timestamp are exclusive")
	}
	kind, err := DetectKind(path)
	if err != nil {
		return nil, err
	}
	rep := &Report{Path: path, Kind: kind}
	c := &checker{opts: opts, line: 1}
	if kind != InputManifest {
		fr, err := c.checkFile(path, path, "aof", true, kind == InputRDBPreamble)
		if fr != nil {
			rep.Files = append(rep.Files, *fr)
		}
		return rep, err
	}
	mf, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(mf)
	mf.Close()
	if err != nil {
		var me *ManifestSyntaxError
		if errors.As(err, &me) {
			me.File = path
		}
		return rep, err
	}
	rep.Manifest = m
	dir := filepath.Dir(path)
	files := m.LoadOrder()
	for i, f := range files {
		role := "incr"
		if i == 0 && m.Base != nil {
			role = "base"
		}
		p := filepath.Join(dir, f.Name)
		preamble := false
		if role == "base" {
			if preamble, err = looksLikeRDB(p); err != nil {
				return rep, err
			}
		}
		fr, err := c.checkFile(f.Name, p, role, i == len(files)-1, preamble)
		if fr != nil {
			rep.Files = append(rep.Files, *fr)
		}
		if err != nil {
			return rep, err
		}
		if !fr.Valid() {
			for _, g := range files[i+1:] {
				rep.Unchecked = append(rep.Unchecked, g.Name)
			}
			break
		}
	}
	return rep, nil
}

// checker holds what redis-check-aof keeps in globals across the files of
// a set (the line counter).
type checker struct {
	opts CheckOptions
	line int64

	// per file
	f      *cfile
	epos   int64
	eposNL int64
	errMsg string
}

func (c *checker) setErr(format string, args ...any) {
	// snprintf into a C buffer: a NUL byte ends the message.
	c.errMsg = string(cstr([]byte(fmt.Sprintf(format, args...))))
}

func (c *checker) checkFile(name, path, role string, last, preamble bool) (*FileReport, error) {
	fr := &FileReport{Name: name, Path: path, Role: role, Last: last, Format: "resp"}
	if preamble {
		fr.Format = "rdb"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	fr.Size = st.Size()
	if fr.Size == 0 {
		fr.Empty = true
		fr.OKUpToLine = c.line
		return fr, nil
	}
	var start int64
	if preamble {
		end, err := rdbPreambleEnd(bufio.NewReaderSize(f, 64<<10))
		if err != nil {
			ce := &CorruptionError{File: name, Err: fmt.Errorf("RDB preamble: %w", err)}
			ce.Offset = rdbErrOffset(err, end)
			fr.Damage, fr.Err, fr.Diff = DamageCorrupt, ce, fr.Size
			fr.OKUpToLine = c.line
			fr.ToolMessage = "--- RDB ERROR DETECTED ---"
			return fr, nil
		}
		start = end
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return nil, fmt.Errorf("seek %s: %w", path, err)
		}
	}
	c.f = &cfile{br: bufio.NewReaderSize(f, 64<<10), pos: start}
	c.errMsg, c.epos, c.eposNL = "", 0, 0
	cf := c.f

	multi := 0
	pos := start
	cmdStart := int64(-1) // start of the command whose reading failed
	formatErr := false
	for {
		if multi == 0 {
			pos = cf.pos
		}
		b, err := cf.peek()
		if err == io.EOF {
			cf.eof = true
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s at offset %d: %w", path, cf.pos, err)
		}
		if b == '#' {
			done, err := c.annotation(name, path, last)
			if err != nil {
				return fr, err
			}
			if done {
				fr.OKUpTo, fr.OKUpToLine = c.epos, c.line
				fr.TruncatedToTimestamp, fr.TruncatedAt = true, c.epos
				return fr, nil
			}
		} else if b == '*' {
			at := cf.pos
			ok, err := c.processRESP(name, &multi)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			if !ok {
				cmdStart = at
				break
			}
		} else {
			formatErr = true
			c.epos, c.eposNL = cf.pos, cf.nl
			cmdStart = cf.pos
			fr.ToolMessage = fmt.Sprintf("AOF %s format error", name)
			break
		}
	}
	if cf.eof && multi != 0 && c.errMsg == "" {
		c.setErr("Reached EOF before reading EXEC for MULTI")
	}
	if c.errMsg != "" {
		fr.ToolMessage = fmt.Sprintf("0x%16x: %s", c.epos, c.errMsg)
	}
	fr.OKUpTo, fr.OKUpToLine, fr.Diff = pos, c.line, fr.Size-pos
	if fr.Diff == 0 {
		return fr, nil
	}
	// Classify and count what a truncation loses.
	afterOff := cmdStart
	if afterOff < 0 {
		afterOff = fr.Size
	}
	lost, laterOffs, err := scanHeaders(path, pos, afterOff)
	if err != nil {
		return nil, err
	}
	after, err := completeCommandAt(path, laterOffs)
	if err != nil {
		return nil, err
	}
	fr.LostCommands = lost
	reason := c.errMsg
	if formatErr {
		reason = fmt.Sprintf("format error: expected '*' or '#', got %q", peekByte(path, c.epos))
	} else if reason == "" {
		reason = "file ends inside a command"
	}
	if multi > 0 && cmdStart >= 0 {
		reason += fmt.Sprintf(" (inside the MULTI at offset %d)", pos)
	}
	fr.Damage = DamageCorrupt
	rerr := errors.New(reason)
	if !formatErr && cf.eof && !after {
		fr.Damage = DamageTornTail
		rerr = fmt.Errorf("%s: %w", reason, ErrTruncated)
	}
	fr.Err = &CorruptionError{File: name, Offset: c.epos, Line: c.eposNL + 1, Err: rerr}
	if cmdStart < 0 && !formatErr {
		// EOF inside MULTI: point at the MULTI that never got its EXEC.
		fr.Err.Offset = pos
		fr.Err.Line = newlinesBefore(path, pos) + 1
	}

	if c.opts.Fix && last && (fr.Damage == DamageTornTail || c.opts.FixCorruption) {
		if err := truncateFile(path, pos); err != nil {
			return fr, err
		}
		fr.Fixed = true
	}
	return fr, nil
}

// annotation is processAnnotations: it reports done when the file was cut
// at a #TS annotation past the requested timestamp.
func (c *checker) annotation(name, path string, last bool) (bool, error) {
	cf := c.f
	c.epos, c.eposNL = cf.pos, cf.nl
	buf, ok, err := cf.fgets(resp.MaxAnnotationLen)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if !ok {
		return false, fmt.Errorf("read %s at offset %d: failed to read annotation", path, c.epos)
	}
	ts := c.opts.TruncateToTimestamp
	cs := cstr(buf)
	if ts == 0 || !bytes.HasPrefix(cs, []byte("#TS:")) {
		return false, nil
	}
	v, end, over := strtol(cs[4:])
	if over || 4+end >= len(cs) || cs[4+end] != '\r' {
		return false, &CorruptionError{File: name, Offset: c.epos, Line: c.eposNL + 1, Err: fmt.Errorf("invalid timestamp annotation %q", bytes.TrimRight(cs, "\r\n"))}
	}
	if v <= ts {
		return false, nil
	}
	if c.epos == 0 {
		return false, &TimestampError{File: name, Offset: 0, Timestamp: ts, Msg: fmt.Sprintf("AOF %s has nothing before timestamp %d", name, ts)}
	}
	if !last {
		return false, &TimestampError{File: name, Offset: c.epos, Timestamp: ts, Msg: fmt.Sprintf(
			"cannot truncate AOF %s to timestamp %d at offset %d because it is not the last file; "+
				"delete all files after it from the directory and the manifest by hand, then run the check again", name, ts, c.epos)}
	}
	if err := truncateFile(path, c.epos); err != nil {
		return false, err
	}
	return true, nil
}

// processRESP reads one command like redis-check-aof's processRESP. ok is
// false when it stopped (c.errMsg says why, unless the file just ended).
func (c *checker) processRESP(name string, multi *int) (bool, error) {
	argc, ok, err := c.readLong('*')
	if err != nil || !ok {
		return false, err
	}
	for i := int64(0); i < argc; i++ {
		head, ok, err := c.readString()
		if err != nil || !ok {
			return false, err
		}
		if i == 0 {
			s := cstr(head)
			if resp.IsName(s, "multi") {
				*multi++
				if *multi-1 != 0 {
					c.setErr("Unexpected MULTI in AOF %s", name)
					return false, nil
				}
			} else if resp.IsName(s, "exec") {
				*multi--
				if *multi != 0 {
					c.setErr("Unexpected EXEC in AOF %s", name)
					return false, nil
				}
			}
		}
	}
	return true, nil
}

// readLong reads "<prefix><number>\r\n" with fgets(128) and strtol.
func (c *checker) readLong(prefix byte) (int64, bool, error) {
	cf := c.f
	c.epos, c.eposNL = cf.pos, cf.nl
	buf, ok, err := cf.fgets(128)
	if err != nil || !ok {
		return 0, false, err
	}
	if buf[0] != prefix {
		c.setErr("Expected prefix '%c', got: '%c'", prefix, buf[0])
		return 0, false, nil
	}
	cs := cstr(buf)
	v, end, _ := strtol(cs[1:])
	return v, c.consumeNewline(cs[1+end:]), nil
}

func (c *checker) consumeNewline(b []byte) bool {
	if len(b) >= 2 && b[0] == '\r' && b[1] == '\n' {
		c.line++
		return true
	}
	var x, y byte
	if len(b) > 0 {
		x = b[0]
	}
	if len(b) > 1 {
		y = b[1]
	}
	c.setErr("Expected \\r\\n, got: %s%s", cHex(x), cHex(y))
	return false
}

// cHex formats a byte as printf("%02x", (char)b) does with a signed char.
func cHex(b byte) string {
	if b >= 0x80 {
		return fmt.Sprintf("ffffff%02x", b)
	}
	return fmt.Sprintf("%02x", b)
}

// readString reads "$<len>\r\n<len bytes>\r\n" and returns the first bytes
// of the payload (enough to compare it with MULTI and EXEC).
func (c *checker) readString() ([]byte, bool, error) {
	n, ok, err := c.readLong('$')
	if err != nil || !ok {
		return nil, false, err
	}
	if n < 0 || n > 1<<63-1-2 {
		c.setErr("Expected to read string of %d bytes, which is not in the suitable range", n)
		return nil, false, nil
	}
	n += 2
	cf := c.f
	c.epos, c.eposNL = cf.pos, cf.nl
	head, tail, got, err := cf.fread(n)
	if err != nil {
		return nil, false, err
	}
	if got != n {
		c.setErr("Expected to read %d bytes, got %d bytes", n, got)
		return nil, false, nil
	}
	if !c.consumeNewline(tail) {
		return nil, false, nil
	}
	// The payload is head minus the CRLF (when n-2 < len(head)).
	if int64(len(head)) > n-2 {
		head = head[:n-2]
	}
	return head, true, nil
}

// cfile reproduces the stdio behaviour redis-check-aof depends on.
type cfile struct {
	br      *bufio.Reader
	pos     int64
	nl      int64 // newline bytes consumed
	eof     bool  // a read hit end of file since the last peek
	buf     []byte
	scratch []byte
}

// peek is fgets(buf,2) followed by fseek(-1): it returns the next byte and
// clears the end-of-file indicator.
func (f *cfile) peek() (byte, error) {
	f.eof = false
	b, err := f.br.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// fgets reads up to n-1 bytes, through the first '\n'. ok is false when
// nothing could be read at end of file.
func (f *cfile) fgets(n int) ([]byte, bool, error) {
	f.buf = f.buf[:0]
	for len(f.buf) < n-1 {
		c, err := f.br.ReadByte()
		if err == io.EOF {
			f.eof = true
			break
		}
		if err != nil {
			return nil, false, err
		}
		f.buf = append(f.buf, c)
		f.pos++
		if c == '\n' {
			f.nl++
			break
		}
	}
	return f.buf, len(f.buf) > 0, nil
}

// fread consumes up to n bytes, keeping the first 8 and the last 2; got
// is how many there were.
func (f *cfile) fread(n int64) (head, tail []byte, got int64, err error) {
	if f.scratch == nil {
		f.scratch = make([]byte, 32<<10)
	}
	var h [8]byte
	var t [2]byte
	hn, tn := 0, 0
	for got < n {
		c := int64(len(f.scratch))
		if n-got < c {
			c = n - got
		}
		k, rerr := io.ReadFull(f.br, f.scratch[:c])
		p := f.scratch[:k]
		if hn < len(h) {
			hn += copy(h[hn:], p)
		}
		for _, b := range p[max(0, len(p)-2):] {
			if tn == 2 {
				t[0], t[1] = t[1], b
			} else {
				t[tn] = b
				tn++
			}
		}
		f.nl += int64(bytes.Count(p, []byte{'\n'}))
		f.pos += int64(k)
		got += int64(k)
		if rerr != nil {
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				f.eof = true
				break
			}
			return nil, nil, got, rerr
		}
	}
	return h[:hn], t[:tn], got, nil
}

// scanHeaders counts command headers ("*<digits>\r\n$") from off to the
// end of the file, and returns the offsets of the first few that start
// after the offset after.
func scanHeaders(path string, off, after int64) (total int64, later []int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return 0, nil, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	// state: 0 = looking, 1 = after '*', 2 = digits, 3 = '\r', 4 = '\n'
	state, pos, start := 0, off, int64(0)
	for ; ; pos++ {
		c, err := br.ReadByte()
		if err == io.EOF {
			return total, later, nil
		}
		if err != nil {
			return 0, nil, err
		}
		switch {
		case (state == 1 || state == 2) && c >= '0' && c <= '9':
			state = 2
		case state == 2 && c == '\r':
			state = 3
		case state == 3 && c == '\n':
			state = 4
		case state == 4 && c == '$':
			total++
			if start > after && len(later) < maxProbes {
				later = append(later, start)
			}
			state = 0
		case c == '*':
			state, start = 1, pos
		default:
			state = 0
		}
	}
}

const (
	maxProbes      = 64       // header candidates tried after a break
	maxProbeBudget = 64 << 20 // bytes read by all probes together
)

// completeCommandAt reports whether one of the offsets starts a complete,
// strictly valid command that ends at the end of the file or at the start
// of another record: evidence that the break is damage in the middle
// rather than a torn tail (whose partial payload may itself look like
// RESP headers).
func completeCommandAt(path string, offs []int64) (bool, error) {
	if len(offs) == 0 {
		return false, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	budget := int64(maxProbeBudget)
	for _, off := range offs {
		if budget <= 0 {
			return true, nil // too costly to tell: call it corruption
		}
		lr := &io.LimitedReader{R: io.NewSectionReader(f, off, st.Size()-off), N: budget}
		r := NewReader(lr, ReaderOptions{StartOffset: off})
		rec, err := r.Next()
		budget = lr.N
		if err != nil || rec.Kind != RecordCommand {
			continue
		}
		end := r.Offset()
		if end == st.Size() {
			return true, nil
		}
		var b [1]byte
		if _, err := f.ReadAt(b[:], end); err == nil && (b[0] == '*' || b[0] == '#') {
			return true, nil
		}
	}
	return false, nil
}

func newlinesBefore(path string, off int64) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 32<<10)
	r := io.LimitReader(f, off)
	for {
		k, err := r.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if err != nil {
			return n
		}
	}
}

func peekByte(path string, off int64) byte {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var b [1]byte
	_, _ = f.ReadAt(b[:], off)
	return b[0]
}

func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("truncate %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("truncate %s to %d bytes: %w", path, size, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}
