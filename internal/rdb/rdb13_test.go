package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
)

// TestReader_Redis86File reads an RDB 13 written by Redis 8.6.3 (all
// types, a stream with IDMP producers and a consumer group, a hash with a
// field TTL, a function, two dbs): every value decodes, and the stream's
// IDMP state is what XINFO STREAM reported.
func TestReader_Redis86File(t *testing.T) {
	data, err := os.ReadFile("testdata/server-redis-8.6.3.rdb")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(data), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Version() != 13 {
		t.Fatalf("version %d, want 13", r.Version())
	}
	var idmp *StreamIDMP
	keys := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind != RecordKey {
			continue
		}
		keys++
		if string(rec.Key) == "st" {
			if rec.Type != TypeStreamListpacks4 {
				t.Fatalf("st: type %d, want 26", rec.Type)
			}
			err := Decode(rec.Type, rec.Value, &Visitor{Stream: func(s *StreamInfo) error {
				m := s.IDMP
				idmp = &m
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if keys != 11 || r.Checksum() != ChecksumOK {
		t.Fatalf("%d keys, checksum %v", keys, r.Checksum())
	}
	want := StreamIDMP{Duration: 100, MaxSize: 100, Producers: 2, IIDs: 3, Added: 3, Duplicates: 1}
	if idmp == nil || *idmp != want {
		t.Fatalf("IDMP %+v, want %+v", idmp, want)
	}
}

// TestDumpPayload_KeyMeta: a DUMP payload of Redis 8.6 may start with
// KEY_META; ParseDumpPayload and SplitPayload return it apart from the
// type and value, AppendMetaPayload builds it, and a payload of Valkey's
// numbering never reads byte 243 as key metadata.
func TestDumpPayload_KeyMeta(t *testing.T) {
	raw := EncodeString([]byte("v"))
	meta := keyMetaBody(false)
	p := AppendMetaPayload(nil, meta, TypeString, raw, 13)
	typ, m, r, ver, err := ParseDumpPayload(p)
	if err != nil || typ != TypeString || !bytes.Equal(m, meta) || !bytes.Equal(r, raw) || ver != 13 {
		t.Fatalf("ParseDumpPayload = %d %x %x %d %v", typ, m, r, ver, err)
	}
	typ, m, r, ok := SplitPayload(p)
	if !ok || typ != TypeString || !bytes.Equal(m, meta) || !bytes.Equal(r, raw) {
		t.Fatalf("SplitPayload = %d %x %x %v", typ, m, r, ok)
	}
	if PayloadType(p) != TypeString {
		t.Fatalf("PayloadType = %d", PayloadType(p))
	}
	plain := AppendMetaPayload(nil, nil, TypeString, raw, 13)
	if !bytes.Equal(plain, DumpPayload(TypeString, raw, 13)) {
		t.Fatal("AppendMetaPayload without meta differs from DumpPayload")
	}
	// Damaged metadata: a class count the bytes cannot hold.
	bad := []byte{OpKeyMeta, 0x3f, 1, 13, 0}
	bad = binary.LittleEndian.AppendUint64(bad, CRC64(0, bad))
	var fe *FormatError
	if _, _, _, _, err := ParseDumpPayload(bad); !errors.As(err, &fe) {
		t.Fatalf("ParseDumpPayload(bad meta) = %v, want a FormatError", err)
	}
	if _, _, _, ok := SplitPayload(bad); ok {
		t.Fatal("SplitPayload(bad meta) ok")
	}
}

// TestReader_KeyMetaDamage: a KEY_META cut short, and one whose class
// value lacks the module EOF tag, are FormatErrors.
func TestReader_KeyMetaDamage(t *testing.T) {
	for name, body := range map[string][]byte{
		"truncated": {OpKeyMeta, 1, 1, 2},
		"no eof":    {OpKeyMeta, 1, 1, 2, 3, 4, 9},
	} {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, 13)
		w.SelectDB(0)
		w.WriteRaw(body)
		w.WriteKey([]byte("k"), TypeString, EncodeString([]byte("v")), -1, -1, -1)
		w.Close()
		_, _, err := readAll(t, buf.Bytes())
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("%s: got %v, want a FormatError", name, err)
		}
	}
}
