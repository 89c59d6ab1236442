package pitr

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"redback/internal/catalog"
	"redback/internal/resp"
)

// BenchmarkScanRecords reads a segment's AOF of 20,000 SETs of 100-byte
// values, a #TS annotation every 1,000.
func BenchmarkScanRecords(b *testing.B) {
	var data []byte
	val := bytes.Repeat([]byte("v"), 100)
	var cmds int64
	for i := range 20000 {
		if i%1000 == 0 {
			data = append(data, "#TS:1795520462\r\n"...)
		}
		n := len(data)
		data = resp.AppendCommand(data, []byte("SET"), []byte("key:"+strconv.Itoa(i)), val)
		cmds += int64(len(data) - n)
	}
	seg := &catalog.Segment{Start: 1000, End: 1000 + cmds, Index: []catalog.Checkpoint{{16, 1000, 1, 0}}}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := scanRecords(context.Background(), bytes.NewReader(data), "k", seg, func(*record) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
