package ship

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"redback/internal/pack"
)

// BenchmarkBuilderAndSeal measures the CPU cost of turning SET commands
// (100-byte values, like redis-benchmark -d 100) into sealed segments.
func BenchmarkBuilderAndSeal(b *testing.B) {
	val := strings.Repeat("x", 100)
	b.ReportAllocs()
	bl := &builder{bufSize: DefaultSegmentSize + 64<<10}
	bl.reset("g", 0, 0)
	var sl sealer
	defer sl.close()
	var out bytes.Buffer
	off := int64(0)
	now := time.Now()
	var n int64
	for i := 0; i < b.N; i++ {
		c := cmdAt(off, 0, "SET", fmt.Sprintf("key:%012d", i%1000000), val)
		bl.add(c, now)
		off = c.End()
		n += c.Len
		if bl.pending() >= DefaultSegmentSize {
			seg := bl.cut()
			out.Reset()
			if _, err := sl.seal(&out, seg.buf, pack.Options{}); err != nil {
				b.Fatal(err)
			}
			bl.free = seg.buf
		}
	}
	b.SetBytes(n / int64(b.N))
}
