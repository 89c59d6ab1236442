package rdb

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestCanonicalInt(t *testing.T) {
	for _, s := range []string{"0", "1", "-1", "9223372036854775807", "-9223372036854775808", "007", "+1", "-0", "", "-", "1a", "9223372036854775808", "-9223372036854775809", "99999999999999999999", " 1"} {
		v, ok := canonicalInt([]byte(s))
		pv, err := strconv.ParseInt(s, 10, 64)
		want := err == nil && strconv.FormatInt(pv, 10) == s
		if ok != want || ok && v != pv {
			t.Errorf("canonicalInt(%q) = %d, %v; want %d, %v", s, v, ok, pv, want)
		}
	}
}

// copyStreamed copies the keys of data into a file of its version, every
// value streamed from its first piece on (strings from 2 bytes on) and
// copied by StreamKey's Raw, never held; other values by WriteKey.
func copyStreamed(t *testing.T, data []byte) (out []byte, streamed int) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	w, err := NewWriter(&file, r.Version())
	if err != nil {
		t.Fatal(err)
	}
	db := -1
	selectDB := func(d int) {
		if d != db {
			_ = w.SelectDB(d)
			db = d
		}
	}
	opts := Options{StreamAbove: 1, StreamStrings: true, StreamValues: func(rec *Record) (*Visitor, error) {
		selectDB(rec.DB)
		return w.StreamKey(rec.Key, rec.Type, rec.Expire, rec.Idle, rec.Freq)
	}}
	eachKey(t, bytes.NewReader(data), opts, func(rec *Record) {
		if rec.Streamed {
			streamed++
			return
		}
		selectDB(rec.DB)
		if err := w.WriteKey(rec.Key, rec.Type, rec.Value, rec.Expire, rec.Idle, rec.Freq); err != nil {
			t.Fatal(err)
		}
	})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return file.Bytes(), streamed
}

// A value copied as it streams (Writer.StreamKey) is the same value: every
// fixture and a big list and string, copied so, read back with the same
// keys, elements and TTLs as the source.
func TestWriter_StreamKeyCopies(t *testing.T) {
	type src struct {
		name string
		data []byte
	}
	var srcs []src
	for _, f := range fixtures() {
		if f.checksum == ChecksumOK {
			srcs = append(srcs, src{f.name, f.bytes(t)})
		}
	}
	srcs = append(srcs, src{"big list", bigListFile(t, 50_000)}, src{"big string", stringsFile(t, EncodeString(bytes.Repeat([]byte("0123456789"), 300_000)))})
	for _, s := range srcs {
		out, n := copyStreamed(t, s.data)
		want, _ := keyTexts(t, s.data, 0)
		got, _ := keyTexts(t, out, 0)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: the copy holds %q, the source %q", s.name, got, want)
		}
		if n == 0 && strings.HasPrefix(s.name, "big") {
			t.Errorf("%s: no value streamed", s.name)
		}
		ttl := func(data []byte) (out []string) {
			eachKey(t, bytes.NewReader(data), Options{}, func(rec *Record) {
				out = append(out, fmt.Sprintf("%d %q %d %d %d", rec.DB, rec.Key, rec.Expire, rec.Idle, rec.Freq))
			})
			return out
		}
		if g, w := ttl(out), ttl(s.data); fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%s: copied keys %q, source %q", s.name, g, w)
		}
	}
}
