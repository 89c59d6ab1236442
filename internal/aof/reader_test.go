package aof

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriter_ReaderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	type rec struct {
		off  int64
		ts   int64
		args []string
	}
	var want []rec
	add := func(args ...string) {
		t.Helper()
		bs := make([][]byte, len(args))
		for i, a := range args {
			bs[i] = []byte(a)
		}
		db := w.DB()
		wrote := w.written
		off := w.Offset()
		if err := w.WriteCommand(bs...); err != nil {
			t.Fatal(err)
		}
		if wrote != db && !(len(args) == 2 && strings.EqualFold(args[0], "select")) {
			want = append(want, rec{off: off, ts: -1, args: []string{"SELECT", itoa(db)}})
			off = -2 // unknown: after the SELECT
		}
		want = append(want, rec{off: off, ts: -1, args: args})
	}
	tsAt := func(ts int64) {
		want = append(want, rec{off: w.Offset(), ts: ts})
		if err := w.WriteTimestamp(ts); err != nil {
			t.Fatal(err)
		}
	}
	tsAt(1795520462)
	add("SET", "a", "1")
	add("SET", "bin", "x\r\n*3\r\n$3\r\n\x00\xff")
	w.SetDB(3)
	add("RPUSH", "l", "a", "b")
	tsAt(1795520463)
	add("SET", "big", strings.Repeat("z", 200<<10))
	add("select", "0")
	add("DEL", "a")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != w.Offset() {
		t.Fatalf("Offset %d, wrote %d", w.Offset(), buf.Len())
	}
	r := NewReader(bytes.NewReader(buf.Bytes()), ReaderOptions{File: "x.aof"})
	var got []rec
	for i := 0; i < 100; i++ {
		rr, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		g := rec{off: rr.Offset, ts: -1}
		if rr.Kind == RecordAnnotation {
			if !rr.HasTimestamp {
				t.Fatalf("annotation %q without timestamp", rr.Annotation)
			}
			g.ts = rr.Timestamp
		}
		for _, a := range rr.Args {
			g.args = append(g.args, string(a))
		}
		if rr.Offset+rr.Size != r.Offset() {
			t.Fatalf("record at %d size %d, reader at %d", rr.Offset, rr.Size, r.Offset())
		}
		got = append(got, g)
	}
	for i := range want {
		if want[i].off == -2 && i < len(got) {
			want[i].off = got[i].off
		}
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(rec{})); d != "" {
		t.Fatalf("records (-want +got):\n%s", d)
	}
	if got[1].args[0] != "SELECT" || got[1].args[1] != "0" {
		t.Fatalf("first command is not SELECT 0: %v", got[1])
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func TestReader_Damage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		off     int64
		line    int64
		torn    bool
		records int
	}{
		{"torn header", "*1\r\n$4\r\nPING\r\n*2\r", 14, 4, true, 1},
		{"torn payload", "*1\r\n$4\r\nPI", 8, 3, true, 0},
		{"torn crlf", "*1\r\n$4\r\nPING", 12, 3, true, 0},
		{"torn annotation", "#TS:12", 0, 1, true, 0},
		{"garbage", "*1\r\n$4\r\nPING\r\nxyz\r\n", 14, 4, false, 1},
		{"bad crlf", "*1\r\n$4\r\nPINGxx", 12, 3, false, 0},
		{"bad prefix", "*1\r\n%4\r\nPING\r\n", 4, 2, false, 0},
		{"empty line", "*1\r\n\r\n", 4, 2, false, 0},
		{"negative len", "*1\r\n$-1\r\n", 4, 2, false, 0},
		{"huge len", "*1\r\n$99999999999999\r\n", 4, 2, false, 0},
		{"huge argc", "*99999999999\r\n", 0, 1, false, 0},
		{"zero argc", "*0\r\n", 0, 1, false, 0},
		{"bad timestamp", "#TS:x\r\n", 0, 1, false, 0},
		{"long annotation", "#" + strings.Repeat("a", 2000) + "\r\n", 0, 1, false, 0},
		{"no cr", "*1\n", 0, 1, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.in), ReaderOptions{File: "f.aof"})
			n := 0
			var err error
			for i := 0; i < 10; i++ {
				if _, err = r.Next(); err != nil {
					break
				}
				n++
			}
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want CorruptionError", err)
			}
			if ce.Offset != tc.off || ce.Line != tc.line || errors.Is(err, ErrTruncated) != tc.torn || n != tc.records || ce.File != "f.aof" {
				t.Fatalf("got %v (torn %v) after %d records; want offset %d line %d torn %v after %d",
					err, errors.Is(err, ErrTruncated), n, tc.off, tc.line, tc.torn, tc.records)
			}
			if !ce.VerificationFailed() {
				t.Fatal("not a verification failure")
			}
		})
	}
}

// TestReader_BoundedAllocation: a declared length far beyond the input
// does not allocate it.
func TestReader_BoundedAllocation(t *testing.T) {
	in := []byte("*1\r\n$500000000\r\nabc")
	var ms1, ms2 runtimeMem
	ms1.read()
	r := NewReader(bytes.NewReader(in), ReaderOptions{})
	if _, err := r.Next(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v", err)
	}
	ms2.read()
	if d := ms2.total - ms1.total; d > 16<<20 {
		t.Fatalf("allocated %d bytes for a 20-byte input", d)
	}
}
