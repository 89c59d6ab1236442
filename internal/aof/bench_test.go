package aof

import (
	"bytes"
	"io"
	"strconv"
	"testing"
)

// benchAOF is an AOF of 20,000 SETs of 100-byte values with a #TS
// annotation every 1,000 commands.
func benchAOF() []byte {
	var b bytes.Buffer
	w := NewWriter(&b)
	val := bytes.Repeat([]byte("v"), 100)
	for i := range 20000 {
		if i%1000 == 0 {
			w.Flush()
			b.WriteString("#TS:1795520462\r\n")
		}
		_ = w.WriteCommand([]byte("SET"), []byte("key:"+strconv.Itoa(i)), val)
	}
	w.Flush()
	return b.Bytes()
}

func BenchmarkReader(b *testing.B) {
	data := benchAOF()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(data), ReaderOptions{})
		for {
			if _, err := r.Next(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
}
