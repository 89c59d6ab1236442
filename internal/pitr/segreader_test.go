package pitr

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"redback/internal/resp"
)

func TestSegReader(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, 3<<20) // read in several chunks
	var in []byte
	in = resp.AppendCommandString(in, "SELECT", "0")
	in = append(in, "#TS:1795520462\r\n"...)
	in = resp.AppendCommand(in, []byte("SET"), []byte("k"), big)
	in = resp.AppendCommandString(in, "DEL", "k")
	r := newSegReader(bytes.NewReader(in))
	var got []string
	var pos int64
	for {
		rec, err := r.ReadRecord()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rec.Raw, in[pos:pos+int64(len(rec.Raw))]) {
			t.Fatalf("raw bytes at %d differ", pos)
		}
		pos = r.Offset()
		if rec.Annotation {
			got = append(got, "#")
			continue
		}
		got = append(got, string(rec.Args[0])+":"+string(rune('0'+len(rec.Args))))
	}
	if strings.Join(got, " ") != "SELECT:2 # SET:3 DEL:2" || pos != int64(len(in)) {
		t.Errorf("got %v at %d", got, pos)
	}

	for name, bad := range map[string]string{
		"hostile length": "*1\r\n$4000000000\r\nabc",
		"truncated":      "*2\r\n$3\r\nSET\r\n$5\r\nab",
		"no crlf":        "*1\r\n$3\r\nSETxx",
		"not resp":       "SET a b\r\n",
		"zero args":      "*0\r\n",
		"long line":      "#" + strings.Repeat("a", 2000) + "\r\n",
		"too many args":  "*99999999\r\n",
	} {
		r := newSegReader(strings.NewReader(bad))
		if _, err := r.ReadRecord(); err == nil || err == io.EOF {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzSegReader: a segment's bytes come from the repository; whatever they
// hold, the reader returns records whose raw bytes are exactly the input
// it consumed, or an error, and never panics or allocates beyond what
// arrived.
func FuzzSegReader(f *testing.F) {
	var ok []byte
	ok = resp.AppendCommandString(ok, "SELECT", "0")
	ok = append(ok, "#TS:1795520462\r\n#TICK:1795520462123\r\n"...)
	ok = resp.AppendCommandString(ok, "SET", "k", "v")
	ok = resp.AppendCommandString(ok, "MULTI")
	ok = resp.AppendCommandString(ok, "EXEC")
	f.Add(ok)
	for _, s := range []string{"*1\r\n$4000000000\r\nabc", "*2\r\n$3\r\nSET\r\n$5\r\nab", "*1\r\n$3\r\nSETxx",
		"SET a b\r\n", "*0\r\n", "*99999999\r\n", "*+1\r\n$-1\r\n", "#\n", "*1\r\n$01\r\nx\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newSegReader(bytes.NewReader(in))
		var pos int64
		for i := 0; i <= len(in); i++ {
			rec, err := r.ReadRecord()
			if err != nil {
				var pe *resp.ProtocolError
				if err != io.EOF && (!errors.As(err, &pe) || pe.Offset < pos || pe.Offset > int64(len(in))) {
					t.Fatalf("bad error %v after %d", err, pos)
				}
				return
			}
			n := int64(len(rec.Raw))
			if n == 0 || rec.Size != n || rec.Offset != pos || r.Offset() != pos+n || !bytes.Equal(rec.Raw, in[pos:pos+n]) {
				t.Fatalf("record at %d: raw %q, offset %d", pos, rec.Raw, r.Offset())
			}
			pos = r.Offset()
			if rec.Annotation {
				if rec.Raw[0] != '#' || !bytes.HasSuffix(rec.Raw, []byte("\r\n")) || !bytes.Equal(rec.Text, rec.Raw[1:n-2]) {
					t.Fatalf("annotation %q", rec.Raw)
				}
				continue
			}
			size := 0
			for _, a := range rec.Args {
				size += len(a)
			}
			if len(rec.Args) == 0 || rec.Raw[0] != '*' || size >= len(rec.Raw) {
				t.Fatalf("command %q: %d args", rec.Raw, len(rec.Args))
			}
		}
		t.Fatalf("more records than bytes")
	})
}
