package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func TestReader_ReadValue(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Value
		err  string // substring; "" = no error
	}{
		{"simple", "+OK\r\n", Value{Kind: KindSimple, Str: []byte("OK")}, ""},
		{"error", "-ERR bad thing\r\n", Value{Kind: KindError, Str: []byte("ERR bad thing")}, "ERR bad thing"},
		{"int", ":-42\r\n", Value{Kind: KindInteger, Int: -42}, ""},
		{"bulk", "$3\r\nfoo\r\n", Value{Kind: KindBulk, Str: []byte("foo")}, ""},
		{"empty bulk", "$0\r\n\r\n", Value{Kind: KindBulk, Str: []byte{}}, ""},
		{"null bulk", "$-1\r\n", Value{Kind: KindNull}, ""},
		{"null array", "*-1\r\n", Value{Kind: KindNull}, ""},
		{"resp3 null", "_\r\n", Value{Kind: KindNull}, ""},
		{"bool", "#t\r\n", Value{Kind: KindBool, Int: 1}, ""},
		{"double", ",1.5\r\n", Value{Kind: KindDouble, Str: []byte("1.5")}, ""},
		{"verbatim", "=7\r\ntxt:abc\r\n", Value{Kind: KindBulk, Str: []byte("abc")}, ""},
		{"blob error", "!5\r\nERR x\r\n", Value{Kind: KindError, Str: []byte("ERR x")}, "ERR x"},
		{"array", "*2\r\n:1\r\n*1\r\n-E nested\r\n", Value{Kind: KindArray, Array: []Value{
			{Kind: KindInteger, Int: 1}, {Kind: KindArray, Array: []Value{{Kind: KindError, Str: []byte("E nested")}}}}}, ""},
		{"map", "%1\r\n+a\r\n:1\r\n", Value{Kind: KindMap, Array: []Value{{Kind: KindSimple, Str: []byte("a")}, {Kind: KindInteger, Int: 1}}}, ""},
		{"attribute skipped", "|1\r\n+k\r\n+v\r\n:7\r\n", Value{Kind: KindInteger, Int: 7}, ""},
		{"eof", "", Value{}, "EOF"},
		{"truncated bulk", "$5\r\nab", Value{}, "unexpected EOF"},
		{"truncated array", "*2\r\n:1\r\n", Value{}, "unexpected EOF"},
		{"no crlf", "+OK\n", Value{}, "CRLF"},
		{"bad bulk end", "$1\r\nab\r\n", Value{}, "not terminated"},
		{"bad int", ":12a\r\n", Value{}, "bad integer"},
		{"int overflow", ":99999999999999999999\r\n", Value{}, "bad integer"},
		{"huge bulk", "$4000000000\r\nxx", Value{}, "exceeds limit"},
		{"huge array", "*4000000000\r\n", Value{}, "exceeds limit"},
		{"negative len", "$-2\r\n", Value{}, "bad bulk length"},
		{"unknown type", "?x\r\n", Value{}, "unknown type"},
		{"deep", strings.Repeat("*1\r\n", 100) + ":1\r\n", Value{}, "nesting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), Options{})
			got, err := r.ReadValue()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("err %v", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want containing %q", err, tt.err)
				}
				if got.Kind != KindError {
					return
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("value (-want +got):\n%s", diff)
			}
		})
	}
}

func TestError_Code(t *testing.T) {
	r := NewReader(strings.NewReader("-NOAUTH Authentication required.\r\n"), Options{})
	_, err := r.ReadValue()
	var re Error
	if !errors.As(err, &re) || re.Code() != "NOAUTH" {
		t.Fatalf("err %v code %q", err, re.Code())
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		t.Fatal("server error reported as protocol error")
	}
}

func TestReader_ReadCommand(t *testing.T) {
	var stream []byte
	cmds := [][]string{{"SELECT", "0"}, {"set", "a", "1"}, {"MULTI"}, {"set", "", strings.Repeat("x", 200000)}, {"EXEC"}}
	for _, c := range cmds {
		stream = AppendCommandString(stream, c...)
	}
	for _, shared := range []bool{false, true} {
		// One byte at a time exercises every partial read.
		r := NewReader(iotest.OneByteReader(bytes.NewReader(stream)), Options{})
		read := r.ReadCommand
		if shared {
			read = r.ReadCommandShared
		}
		var total int64
		for i, c := range cmds {
			args, n, err := read()
			if err != nil {
				t.Fatalf("shared %v, command %d: %v", shared, i, err)
			}
			var want [][]byte
			for _, s := range c {
				want = append(want, []byte(s))
			}
			if diff := cmp.Diff(want, args); diff != "" {
				t.Fatalf("shared %v, command %d (-want +got):\n%s", shared, i, diff)
			}
			if n != CommandLen(want...) {
				t.Fatalf("shared %v, command %d: n=%d want %d", shared, i, n, CommandLen(want...))
			}
			total += n
		}
		if total != int64(len(stream)) || r.Offset() != total {
			t.Fatalf("shared %v: total %d offset %d stream %d", shared, total, r.Offset(), len(stream))
		}
		if _, _, err := read(); err != io.EOF {
			t.Fatalf("shared %v: at end: %v, want io.EOF", shared, err)
		}
	}
}

// ReadCommandShared allocates nothing per command once its buffer has
// grown (bytes allocated, not a timing): a replication stream read by
// ship is copied into segments, and fresh arguments made every byte of
// it garbage once. A big command's buffer is not kept after it.
func TestReader_ReadCommandSharedAllocates(t *testing.T) {
	const n = 20000
	var stream []byte
	val := strings.Repeat("v", 1000)
	for i := range n {
		stream = AppendCommandString(stream, "SET", fmt.Sprintf("key:%d", i), val)
	}
	small := len(stream)
	stream = AppendCommandString(stream, "SET", "big", strings.Repeat("x", 2<<20))
	stream = AppendCommandString(stream, "SET", "after", "big")
	r := NewReader(bytes.NewReader(stream), Options{})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		if _, _, err := r.ReadCommandShared(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%.1f MiB of commands: %d KiB allocated", float64(small)/(1<<20), alloc>>10)
	if alloc > 256<<10 {
		t.Errorf("%.1f MiB of commands: %d KiB allocated, want at most 256 KiB", float64(small)/(1<<20), alloc>>10)
	}
	for _, want := range []string{"big", "after"} {
		args, _, err := r.ReadCommandShared()
		if err != nil || string(args[1]) != want {
			t.Fatalf("read %q, %v; want the key %q", args, err, want)
		}
	}
	if cap(r.buf) > sharedBufMax {
		t.Errorf("after the 2 MiB command, a buffer of %d bytes is still held", cap(r.buf))
	}
}

func TestReader_ReadCommandErrors(t *testing.T) {
	tests := []struct {
		name, in, err string
		opts          Options
	}{
		{"inline", "SET a b\r\n", "expected a command array", Options{}},
		{"empty array", "*0\r\n", "command with 0 arguments", Options{}},
		{"integer arg", "*1\r\n:1\r\n", "expected '$'", Options{}},
		{"truncated", "*2\r\n$3\r\nSET\r\n", "unexpected EOF", Options{}},
		{"partial header", "*2", "unexpected EOF", Options{}},
		{"too long", "*1\r\n$100\r\n", "exceeds limit", Options{MaxBulkLen: 10}},
		{"command too long", "*3\r\n$5\r\naaaaa\r\n$5\r\naaaaa\r\n$5\r\naaaaa\r\n", "command longer", Options{MaxCommandLen: 30}},
		{"too many args", "*11\r\n", "exceeds limit", Options{MaxArrayLen: 10}},
		{"long line", "*1\r\n$" + strings.Repeat("1", 100) + "\r\n", "line longer", Options{MaxLineLen: 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), tt.opts)
			_, _, err := r.ReadCommand()
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err %v, want containing %q", err, tt.err)
			}
		})
	}
}

func TestWriter(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	if err := w.WriteCommandString("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteCommand([]byte("PING")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$4\r\nPING\r\n"
	if out.String() != want {
		t.Fatalf("got %q", out.String())
	}
}

func FuzzRESPReader(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR x\r\n", ":1\r\n", "$3\r\nfoo\r\n", "*2\r\n$1\r\na\r\n:2\r\n", "%1\r\n+a\r\n#t\r\n",
		"*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n", "$4000000000\r\n", "*-1\r\n", "|1\r\n+a\r\n+b\r\n_\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		opts := Options{MaxBulkLen: 1 << 20, MaxArrayLen: 1 << 12, MaxDepth: 8, MaxLineLen: 1 << 10, MaxCommandLen: 1 << 20}
		r := NewReader(bytes.NewReader(data), opts)
		for i := 0; i < 1000; i++ {
			if _, err := r.ReadValue(); err != nil {
				var re Error
				if !errors.As(err, &re) {
					break
				}
			}
		}
		// Commands: re-encoding must reproduce the consumed bytes exactly.
		r = NewReader(bytes.NewReader(data), opts)
		var off int64
		for i := 0; i < 1000; i++ {
			args, n, err := r.ReadCommand()
			if err != nil {
				break
			}
			enc := AppendCommand(nil, args...)
			if int64(len(enc)) != n || !bytes.Equal(enc, data[off:off+n]) {
				// Non-canonical lengths such as "$01" are accepted; only the size must match.
				if int64(len(enc)) > n {
					t.Fatalf("command %d: encoded %d bytes > consumed %d", i, len(enc), n)
				}
			}
			off += n
			if r.Offset() != off {
				t.Fatalf("offset %d != sum %d", r.Offset(), off)
			}
		}
	})
}

func BenchmarkReader_ReadCommand(b *testing.B) {
	var stream []byte
	val := bytes.Repeat([]byte("v"), 100)
	for i := 0; i < 1000; i++ {
		stream = AppendCommand(stream, []byte("SET"), []byte("key:000000000"), val)
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	rd := bytes.NewReader(stream)
	for b.Loop() {
		rd.Reset(stream)
		r := NewReader(rd, Options{})
		for {
			if _, _, err := r.ReadCommand(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
}

func BenchmarkAppendCommand(b *testing.B) {
	args := [][]byte{[]byte("SET"), []byte("key:000000000"), bytes.Repeat([]byte("v"), 100)}
	buf := make([]byte, 0, 4096)
	b.SetBytes(CommandLen(args...))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendCommand(buf[:0], args...)
	}
}

func TestIsName(t *testing.T) {
	for _, tc := range []struct {
		arg, name string
		want      bool
	}{{"multi", "MULTI", true}, {"MuLtI", "multi", true}, {"EXEC", "EXEC", true}, {"exe", "EXEC", false},
		{"execs", "EXEC", false}, {"@", "`", false}, {"[", "{", false}, {"", "", true}} {
		if got := IsName([]byte(tc.arg), tc.name); got != tc.want {
			t.Errorf("IsName(%q, %q) = %v", tc.arg, tc.name, got)
		}
	}
}

func TestReader_ReadRecord(t *testing.T) {
	in := "*1\r\n$4\r\nPI\nG\r\n#TS:5\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
	r := NewReader(strings.NewReader(in), Options{Annotations: true, KeepRaw: true, Lines: true, StartOffset: 100})
	var got []string
	for {
		rec, err := r.ReadRecord()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(rec.Raw) != in[rec.Offset-100:rec.Offset-100+rec.Size] {
			t.Fatalf("raw %q at %d", rec.Raw, rec.Offset)
		}
		s := fmt.Sprintf("%d/%d:", rec.Offset, rec.Line)
		if rec.Annotation {
			s += "#" + string(rec.Text)
		} else {
			s += string(bytes.Join(rec.Args, []byte(",")))
		}
		got = append(got, s)
	}
	if want := "100/1:PI\nG 114/5:#TS:5 121/6:GET,k"; strings.Join(got, " ") != want || r.Offset() != int64(100+len(in)) {
		t.Fatalf("got %q at %d, want %q", strings.Join(got, " "), r.Offset(), want)
	}

	for _, tc := range []struct {
		name, in   string
		off, line  int64
		torn       bool
		msgContain string
	}{
		{"torn header", "*1\r\n$4\r\nPING\r\n*2\r", 14, 4, true, "command"},
		{"torn payload", "*1\r\n$4\r\nPI", 8, 3, true, "argument 1 (4 bytes)"},
		{"torn crlf", "*1\r\n$4\r\nPI\nG", 12, 4, true, "argument 1"},
		{"torn annotation", "#TS:12", 0, 1, true, "annotation"},
		{"garbage", "*1\r\n$4\r\nPING\r\nxyz\r\n", 14, 4, false, "expected '*' or '#'"},
		{"bad crlf", "*1\r\n$4\r\nPINGxx", 12, 3, false, "not terminated"},
		{"zero argc", "*0\r\n", 0, 1, false, "0 arguments"},
		{"long annotation", "#" + strings.Repeat("a", 2000) + "\r\n", 0, 1, false, "longer than 1024"},
	} {
		r := NewReader(strings.NewReader(tc.in), Options{Annotations: true, Lines: true})
		var err error
		for err == nil {
			_, err = r.ReadRecord()
		}
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Offset != tc.off || pe.Line != tc.line || (pe.Err == io.ErrUnexpectedEOF) != tc.torn || !strings.Contains(pe.Msg, tc.msgContain) {
			t.Errorf("%s: %v (%+v), want offset %d line %d torn %v", tc.name, err, pe, tc.off, tc.line, tc.torn)
		}
	}
}
