package rdb

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReader_Next(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, 10)
	w.SelectDB(2)
	w.WriteKey([]byte("k"), TypeString, EncodeString([]byte("v")), 1700000000000, -1, -1)
	w.WriteKey([]byte("k2"), TypeString, EncodeString([]byte("v")), -1, 5, -1)
	w.Close()
	r, err := NewReader(bytes.NewReader(buf.Bytes()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, Record{Kind: rec.Kind, Offset: rec.Offset, DB: rec.DB, Key: bytes.Clone(rec.Key), Expire: rec.Expire, Idle: rec.Idle})
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next after EOF = %v, want io.EOF", err)
	}
	if r.Offset() != int64(buf.Len()) {
		t.Errorf("Offset = %d, want %d", r.Offset(), buf.Len())
	}
	want := []Record{
		{Kind: RecordSelectDB, Offset: 9, DB: 2},
		{Kind: RecordKey, Offset: 11, DB: 2, Key: []byte("k"), Expire: 1700000000000, Idle: -1},
		{Kind: RecordKey, Offset: 25, DB: 2, Key: []byte("k2"), Expire: -1, Idle: 5},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Kind != w.Kind || g.Offset != w.Offset || g.DB != w.DB || !bytes.Equal(g.Key, w.Key) || (g.Kind == RecordKey && (g.Expire != w.Expire || g.Idle != w.Idle)) {
			t.Errorf("record %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestReader_OldVersionTrailingBytes(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, 4)
	w.SelectDB(0)
	w.WriteKey([]byte("k"), TypeString, EncodeString([]byte("v")), -1, -1, -1)
	w.Close()
	if err := readErr(buf.Bytes()); err != nil {
		t.Fatalf("clean RDB 4: %v", err)
	}
	var fe *FormatError
	if err := readErr(append(buf.Bytes(), 0)); !errors.As(err, &fe) {
		t.Fatalf("RDB 4 with trailing byte: %v, want a *FormatError", err)
	}
}

func TestDecode_VisitorError(t *testing.T) {
	stop := errors.New("stop here")
	n := 0
	err := Decode(TypeHashListpack, EncodeBlob(BuildListpack(bs("a", "1", "b", "2"))), &Visitor{
		HashField: func(f, v []byte, _ int64) error { n++; return stop },
	})
	if err != stop || n != 1 {
		t.Fatalf("Decode = %v after %d calls, want the callback's error after 1", err, n)
	}
}

func TestDumpPayload(t *testing.T) {
	// From DUMP on Redis 7.0.15 (SET s1 123).
	want := []byte{0x00, 0xc0, 0x7b, 0x0a, 0x00, 0x48, 0xe2, 0x53, 0xe1, 0x00, 0x7a, 0x67, 0xb9}
	if got := DumpPayload(TypeString, []byte{0xc0, 0x7b}, 10); !bytes.Equal(got, want) {
		t.Fatalf("DumpPayload = %x, want %x", got, want)
	}
	typ, _, raw, ver, err := ParseDumpPayload(want)
	if err != nil || typ != TypeString || !bytes.Equal(raw, []byte{0xc0, 0x7b}) || ver != 10 {
		t.Fatalf("ParseDumpPayload = %d %x %d %v", typ, raw, ver, err)
	}
	bad := bytes.Clone(want)
	bad[len(bad)-1] ^= 1
	if _, _, _, _, err := ParseDumpPayload(bad); !errors.Is(err, ErrChecksum) {
		t.Fatalf("ParseDumpPayload(bad CRC) = %v, want ErrChecksum", err)
	}
}
