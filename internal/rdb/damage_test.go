package rdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"redback/internal/redistest"
)

// readErr reads a whole file and returns the first error (nil at a clean
// EOF). It bounds the number of records.
func readErr(data []byte) error { return readErrMode(data, false) }

// readErrMode is readErr, or with skip set, reads with
// Options.SkipValueCheck and runs Decode on every key's value, as the
// digest does; damage Decode finds is then a FormatError at the record,
// naming the key.
func readErrMode(data []byte, skip bool) error {
	return readErrOpts(data, Options{MaxValueBytes: 1 << 20, SkipValueCheck: skip})
}

// readErrOpts reads data with opts (and with SkipValueCheck decodes every
// value not streamed) and returns the first error.
func readErrOpts(data []byte, opts Options) error {
	skip := opts.SkipValueCheck
	r, err := NewReader(bytes.NewReader(data), opts)
	if err != nil {
		return err
	}
	for range 1 << 20 {
		rec, err := r.Next()
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if skip && rec.Kind == RecordKey && !rec.Streamed {
			if err := Decode(rec.Type, rec.Value, nil); err != nil {
				return &FormatError{Offset: rec.Offset, Key: bytes.Clone(rec.Key), Type: rec.Type, Err: err}
			}
		}
	}
	return errors.New("too many records")
}

// readErrFanout reads with Options.SkipValueCheck and checks the values on
// two Fanout workers (CheckValues), as restore --to-dir does.
func readErrFanout(data []byte) error {
	r, err := NewReader(bytes.NewReader(data), Options{MaxValueBytes: 1 << 20, SkipValueCheck: true})
	if err != nil {
		return err
	}
	f := NewFanout(context.Background(), 2, CheckValues(2))
	var scanErr error
	for range 1 << 20 {
		rec, err := r.Next()
		if err != nil {
			if err != io.EOF {
				scanErr = err
			}
			break
		}
		if rec.Kind == RecordKey {
			if scanErr = f.Add(rec); scanErr != nil {
				break
			}
		}
	}
	return f.Wait(scanErr)
}

// readErrStream reads with Options.StreamValues from the first piece on
// (every Piecewise value decoded as it arrives), as check rdb and digest
// do for big values.
func readErrStream(data []byte) error {
	return readErrOpts(data, Options{MaxValueBytes: 1 << 20, StreamAbove: 1, StreamStrings: true,
		StreamValues: func(*Record) (*Visitor, error) { return fullVisitor(), nil }})
}

// bothModes runs readErrMode in both modes; they must agree on whether the
// data is damaged. The Fanout check must report exactly what the full check
// does. It returns the error of the full check.
func bothModes(t *testing.T, what string, data []byte) error {
	t.Helper()
	full, skip := readErrMode(data, false), readErrMode(data, true)
	if fan := readErrFanout(data); fmt.Sprint(fan) != fmt.Sprint(full) {
		t.Errorf("%s: full check %v, but with Fanout workers %v", what, full, fan)
	}
	var fe *FormatError
	if (full == nil) != (skip == nil) || skip != nil && !errors.As(skip, &fe) {
		t.Fatalf("%s: full check %v, but with SkipValueCheck and Decode %v", what, full, skip)
	}
	if errors.Is(full, ErrTruncated) != errors.Is(skip, ErrTruncated) {
		t.Errorf("%s: full check %v, but with SkipValueCheck and Decode %v", what, full, skip)
	}
	// Streaming checks each piece as it arrives, so it may name damage
	// inside a value before the outline runs out of bytes.
	if st := readErrStream(data); (full == nil) != (st == nil) || st != nil && !errors.As(st, &fe) {
		t.Errorf("%s: full check %v, but streaming the values %v", what, full, st)
	}
	return full
}

func realDump(t *testing.T) []byte {
	t.Helper()
	s := redistest.Start(t)
	populate(t, t.Context(), s)
	if err := s.Client().Do(t.Context(), "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestReader_Damage(t *testing.T) {
	files := map[string][]byte{"real": realDump(t)}
	for _, f := range fixtures() {
		if f.checksum == ChecksumOK {
			files[f.name] = f.bytes(t)
		}
	}
	for name, data := range files {
		if err := readErr(data); err != nil {
			t.Fatalf("%s: undamaged file: %v", name, err)
		}
		positions := 500
		if raceEnabled {
			positions = 120
		}
		step := max(1, len(data)/positions)
		checkFE := func(what string, err error) *FormatError {
			t.Helper()
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%s %s: got %v, want a *FormatError", name, what, err)
			}
			if fe.Offset < 0 || fe.Offset > int64(len(data)) {
				t.Errorf("%s %s: offset %d outside the file", name, what, fe.Offset)
			}
			return fe
		}
		for off := 0; off < len(data); off += step {
			for _, bit := range []byte{0x01, 0x80} {
				d := bytes.Clone(data)
				d[off] ^= bit
				checkFE("bit flip at "+itoa(off), bothModes(t, name+" bit flip at "+itoa(off), d))
			}
			if data[off] != 0x82 {
				d := bytes.Clone(data)
				d[off] = 0x82 // never a valid length byte
				checkFE("0x82 at "+itoa(off), bothModes(t, name+" 0x82 at "+itoa(off), d))
			}
			err := bothModes(t, name+" truncated at "+itoa(off), data[:off])
			fe := checkFE("truncated at "+itoa(off), err)
			if off >= 9 && !errors.Is(err, ErrTruncated) {
				t.Errorf("%s truncated at %d: %v does not wrap ErrTruncated", name, off, fe)
			}
		}
		d := bytes.Clone(data)
		d[len(d)-1] ^= 0x10
		err := bothModes(t, name+" bad CRC", d)
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "stored") {
			t.Errorf("%s: bad CRC gave %v, want ErrChecksum naming stored and computed", name, err)
		}
	}
}

// TestReader_CorruptBlobs damages values inside files with a valid CRC, so
// only the structural checks can catch them.
func TestReader_CorruptBlobs(t *testing.T) {
	lp := BuildListpack(bs("f", "v", "n", "100"))
	zl := BuildZiplist(bs("a", "b", "c"))
	is := BuildIntset([]int64{1, 2, 3})
	set := func(b []byte, off int, v byte) []byte { b = bytes.Clone(b); b[off] = v; return b }
	le32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	tests := []struct {
		name string
		typ  Type
		raw  []byte
		want string
	}{
		{"listpack terminator", TypeHashListpack, EncodeBlob(set(lp, len(lp)-1, 0xFE)), "want terminator"},
		{"listpack total_bytes", TypeHashListpack, EncodeBlob(le32(lp, 0, uint32(len(lp)+1))), "total_bytes"},
		{"listpack backlen", TypeHashListpack, EncodeBlob(set(lp, 8, 3)), "bad backlen"},
		{"listpack count", TypeHashListpack, EncodeBlob(set(lp, 4, 3)), "header says 3 entries"},
		{"listpack bad encoding", TypeHashListpack, EncodeBlob(set(lp, 6, 0xF6)), "invalid encoding"},
		{"listpack odd hash", TypeHashListpack, EncodeBlob(BuildListpack(bs("f", "v", "n"))), "not a multiple of 2"},
		{"listpack zset score", TypeZSetListpack, EncodeBlob(BuildListpack(bs("m", "abc"))), "not a number"},
		{"ziplist zltail", TypeListZiplist, EncodeBlob(le32(zl, 4, 120)), "zltail 120 beyond zlbytes"},
		{"ziplist prevlen", TypeListZiplist, EncodeBlob(set(zl, 13, 7)), "prevlen"},
		{"ziplist zllen", TypeListZiplist, EncodeBlob(set(zl, 8, 9)), "zllen 9"},
		{"intset encoding", TypeSetIntset, EncodeBlob(set(is, 0, 3)), "encoding 3"},
		{"intset order", TypeSetIntset, EncodeBlob(set(is, 10, 9)), "not above"},
		{"intset size", TypeSetIntset, EncodeBlob(is[:len(is)-1]), "does not match"},
		{"zipmap end", TypeHashZipmap, EncodeBlob(set(BuildZipmap(bs("a", "b")), 6, 0)), "end byte"},
		{"quicklist container", TypeListQuicklist2, append(AppendLen(AppendLen(nil, 1), 3), EncodeBlob(BuildListpack(bs("a")))...), "container 3"},
		{"quicklist empty node", TypeListQuicklist2, append(AppendLen(AppendLen(nil, 1), 2), EncodeBlob(BuildListpack(nil))...), "is empty"},
		{"lzf length", TypeString, []byte{0xC3, 0x02, 0x05, 0x01, 'a', 'b'}, "lzf"},
		{"stream master terminator", TypeStreamListpacks2, bytes.Replace(buildStream(TypeStreamListpacks2, testEntries, testStreamInfo), []byte{0x82, 'f', '2', 0x03, 0x00}, []byte{0x82, 'f', '2', 0x03, 0x05}, 1), "master terminator is 5"},
		{"stream PEL owner", TypeStreamListpacks3, bytes.Replace(buildStream(TypeStreamListpacks3, testEntries, testStreamInfo),
			[]byte{200, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{200, 0, 0, 0, 0, 0, 0, 0, 0}, 1), "have no consumer"},
		{"type 6", TypeModulePreGA, []byte{0}, "MODULE_PRE_GA"},
		{"dup set listpack", TypeSetListpack, EncodeBlob(BuildListpack(bs("a", "1", "b", "1"))), "duplicate set member"},
		{"dup set", TypeSet, EncodeSet(bs("a", "b", "c", "b")), "duplicate set member"},
		{"dup hash listpack", TypeHashListpack, EncodeBlob(BuildListpack(bs("f", "1", "f", "2"))), "duplicate hash field"},
		{"dup hash", TypeHash, EncodeHash(bs("f", "1", "g", "1", "f", "3")), "duplicate hash field"},
		{"dup zset", TypeZSet2, EncodeZSet2(bs("m", "m"), []float64{1, 2}), "duplicate zset member"},
		{"dup zset ziplist", TypeZSetZiplist, EncodeBlob(BuildZiplist(bs("m", "1", "m", "2"))), "duplicate zset member"},
		{"dup zipmap", TypeHashZipmap, EncodeBlob(BuildZipmap(bs("f", "1", "f", "2"))), "duplicate hash field"},
		{"dup hash ttl", TypeHashMetadataPreGA, append(AppendLen(nil, 2), 0, 1, 'f', 1, 'x', 0, 1, 'f', 1, 'y'), "duplicate hash field"},
		{"no dup", TypeSetListpack, EncodeBlob(BuildListpack(bs("a", "1", "b", "2", "10", "01"))), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, _ := NewWriter(&buf, 12)
			w.WriteKey([]byte("thekey"), tc.typ, tc.raw, -1, -1, -1)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			err := bothModes(t, tc.name, buf.Bytes())
			if skipErr := readErrMode(buf.Bytes(), true); skipErr != nil && !strings.Contains(skipErr.Error(), tc.want) {
				t.Errorf("with SkipValueCheck and Decode: error %q does not mention %q", skipErr, tc.want)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("undamaged value: %v", err)
				}
				return
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *FormatError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if string(fe.Key) != "thekey" || fe.Type != tc.typ {
				t.Errorf("error key %q type %d, want \"thekey\" type %d", fe.Key, fe.Type, tc.typ)
			}
			if fe.Offset < 9 || fe.Offset >= int64(buf.Len()) {
				t.Errorf("offset %d outside the value", fe.Offset)
			}
			if derr := Decode(tc.typ, tc.raw, nil); derr == nil {
				t.Errorf("Decode accepted what the Reader refused")
			}
		})
	}
}

func TestDecode_Corrupt(t *testing.T) {
	tests := []struct {
		name string
		typ  Type
		raw  []byte
		want string
	}{
		{"trailing bytes", TypeString, []byte{0x01, 'a', 'b'}, "unexpected bytes after the value"},
		{"stream node key", TypeStreamListpacks2, append(AppendRawString(AppendLen(nil, 1), []byte("short")), EncodeBlob(BuildListpack(bs("1")))...), "want 16"},
		{"truncated", TypeList, []byte{0x02, 0x01, 'a'}, "truncated"},
		{"huge count", TypeSet, []byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 'a'}, "only 2 bytes left"},
		{"unknown type", Type(8), []byte{0}, "unknown object type 8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Decode(tc.typ, tc.raw, nil)
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a *FormatError mentioning %q", err, tc.want)
			}
		})
	}
}

func TestReader_MaxValueBytes(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, 10)
	w.WriteKey([]byte("k"), TypeString, EncodeString(bytes.Repeat([]byte("x"), 5000)), -1, -1, -1)
	w.Close()
	r, _ := NewReader(bytes.NewReader(buf.Bytes()), Options{MaxValueBytes: 1000})
	_, err := r.Next()
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "MaxValueBytes") {
		t.Fatalf("got %v, want a FormatError about MaxValueBytes", err)
	}
	// A declared length far beyond the data must not be allocated.
	hostile := append([]byte("REDIS0010\x00\x01k\x81"), 0, 0, 0, 0x10, 0, 0, 0, 0)
	r, _ = NewReader(bytes.NewReader(hostile), Options{})
	if _, err := r.Next(); !errors.As(err, &fe) {
		t.Fatalf("got %v, want a FormatError", err)
	}
}

func TestNewReader_Header(t *testing.T) {
	for _, h := range []string{"", "REDIS", "REDIS0014", "REDIS0000", "REDIS00a1", "VALKEY079", "HELLO0001"} {
		_, err := NewReader(strings.NewReader(h+"\xff"), Options{})
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("header %q: got %v, want a *FormatError", h, err)
		}
	}
}
