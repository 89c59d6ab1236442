package rdb

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"testing/iotest"
)

// TestReader_ValuesAcrossBuffer reads values of every size, up to several
// times the read buffer, through sources that return short reads, and
// checks each Record's Value against what was written: Values are slices
// of the read buffer, which moves and grows under them.
func TestReader_ValuesAcrossBuffer(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var buf bytes.Buffer
	w, err := NewWriter(&buf, 10)
	if err != nil {
		t.Fatal(err)
	}
	var keys, vals [][]byte
	for i := range 400 {
		n := rng.IntN(3000)
		switch i % 50 {
		case 7:
			n = readBufSize + rng.IntN(readBufSize)
		case 8:
			n = 3*readBufSize + 17
		case 9:
			n = minReadBufSize - 5 + rng.IntN(10)
		}
		v := make([]byte, n)
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		key := []byte("key:" + strconv.Itoa(i))
		raw := EncodeString(v)
		w.WriteKey(key, TypeString, raw, -1, -1, -1)
		keys, vals = append(keys, key), append(vals, raw)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	sources := map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(data) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
	}
	for name, src := range sources {
		r, err := NewReader(src(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if rec.Kind != RecordKey {
				continue
			}
			if !bytes.Equal(rec.Key, keys[i]) || !bytes.Equal(rec.Value, vals[i]) {
				t.Fatalf("%s: record %d: key %q, value of %d bytes differs from the %d written", name, i, rec.Key, len(rec.Value), len(vals[i]))
			}
			i++
		}
		if i != len(keys) || r.Checksum() != ChecksumOK {
			t.Fatalf("%s: %d keys, checksum %v", name, i, r.Checksum())
		}
	}
}
