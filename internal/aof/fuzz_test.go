package aof

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const fuzzMaxInput = 64 << 10

func FuzzAOFReader(f *testing.F) {
	f.Add([]byte("#TS:1795520462\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nset\r\n$2\r\nt1\r\n$2\r\nv1\r\n"))
	f.Add([]byte("*1\r\n$5\r\nMULTI\r\n*1\r\n$4\r\nEXEC\r\n"))
	f.Add([]byte("*1\r\n$999999999\r\nab"))
	f.Add([]byte("#\r\n*1\r\n\r\n"))
	if seeds, _ := filepath.Glob("testdata/*.aof"); seeds != nil {
		for _, s := range seeds {
			if b, err := os.ReadFile(s); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		r := NewReader(bytes.NewReader(data), ReaderOptions{MaxArgBytes: 1 << 20})
		var out bytes.Buffer
		w := NewWriter(&out)
		for i := 0; i <= len(data); i++ {
			rec, err := r.Next()
			if err == io.EOF {
				if r.Offset() != int64(len(data)) {
					t.Fatalf("EOF at %d of %d", r.Offset(), len(data))
				}
				break
			}
			if err != nil {
				var ce *CorruptionError
				if !errors.As(err, &ce) || ce.Offset < 0 || ce.Offset > int64(len(data)) {
					t.Fatalf("bad error %v", err)
				}
				return
			}
			if rec.Size <= 0 || rec.Offset+rec.Size != r.Offset() {
				t.Fatalf("record %d+%d, reader at %d", rec.Offset, rec.Size, r.Offset())
			}
			if rec.Kind == RecordCommand {
				// Round trip: what the Writer writes reads back equal.
				before := out.Len()
				w.written, w.db = 0, 0
				if err := w.WriteCommand(rec.Args...); err != nil {
					t.Fatal(err)
				}
				w.Flush()
				r2 := NewReader(bytes.NewReader(out.Bytes()[before:]), ReaderOptions{})
				rec2, err := r2.Next()
				if err != nil {
					t.Fatalf("reread: %v", err)
				}
				if !sameArgs(rec.Args, rec2.Args) {
					t.Fatalf("round trip %q != %q", rec.Args, rec2.Args)
				}
			}
		}
	})
}

func FuzzManifest(f *testing.F) {
	f.Add([]byte("file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"))
	f.Add([]byte("# c\nfile \"a b\\x00\" seq 2 type h\nFILE 'x' SEQ 3 TYPE i k v\n"))
	f.Add([]byte("file a seq 9223372036854775808 type i\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		m, err := ParseManifest(bytes.NewReader(data))
		if err != nil {
			var me *ManifestSyntaxError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a ManifestSyntaxError", err)
			}
			return
		}
		var buf bytes.Buffer
		if _, err := m.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if buf.Len() == 0 {
			return // only comments
		}
		out := buf.Bytes() // reading buf would drain it
		m2, err := ParseManifest(bytes.NewReader(out))
		if err != nil {
			// Names longer than a manifest line cannot round trip.
			// Redis writes a name with a ' unquoted and cannot read it back.
			if errors.Is(err, ErrManifestLineTooLong) || bytes.ContainsRune(out, '\'') || hasEmptyName(m) {
				return
			}
			t.Fatalf("reparse %q: %v", out, err)
		}
		if !cmp.Equal(m, m2) {
			t.Fatalf("round trip:\n%s", cmp.Diff(m, m2))
		}
	})
}

// hasEmptyName: Redis writes an empty name unquoted, as nothing.
func hasEmptyName(m *Manifest) bool {
	for _, f := range append(m.LoadOrder(), m.History...) {
		if f.Name == "" {
			return true
		}
	}
	return false
}

// FuzzCheck runs the redis-check-aof emulation (and its fix) on arbitrary
// files: it must not panic, and a fixed file must check valid.
func FuzzCheck(f *testing.F) {
	f.Add([]byte("*1\r\n$5\r\nMULTI\r\n*1\r\n$3\r\nSET\r\n"))
	f.Add([]byte("#TS:5\r\n*2\r\n$1\r\na\r\n$99\r\nb\r\n"))
	f.Add([]byte("*\r\n* 3\r\n$ 1\r\nx\r\n$-1\r\n"))
	f.Add([]byte("file a seq 1 type i\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput || bytes.HasPrefix(data, []byte("REDIS")) {
			return
		}
		p := filepath.Join(t.TempDir(), "f.aof")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := Check(p, CheckOptions{Fix: true, FixCorruption: true})
		if err != nil || rep.Kind == InputManifest {
			return
		}
		if rep2, err := Check(p, CheckOptions{}); err != nil || !rep2.Valid() {
			t.Fatalf("fixed file not valid: %v %+v", err, rep2)
		}
	})
}

// sameArgs compares arguments by content (an empty argument may be nil on
// one side and empty on the other).
func sameArgs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
