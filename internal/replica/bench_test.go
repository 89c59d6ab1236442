package replica_test

import (
	"bytes"
	"io"
	"testing"

	"redback/internal/replica"
	"redback/internal/replica/replicatest"
	"redback/internal/resp"
)

// BenchmarkConn_Next measures the stream path (read, offsets, DB tracking)
// over loopback from the fake primary.
func BenchmarkConn_Next(b *testing.B) {
	const n = 20000
	var stream []byte
	val := bytes.Repeat([]byte("v"), 100)
	for i := 0; i < n; i++ {
		stream = resp.AppendCommand(stream, []byte("SET"), []byte("key:000000000"), val)
	}
	p := replicatest.NewPrimary(b, []byte("REDIS0010"), replicatest.Options{Stream: stream})
	u := mustURLB(b, p.URL())
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		c, err := replica.Dial(b.Context(), u, replica.Config{})
		if err != nil {
			b.Fatal(err)
		}
		res, err := c.Sync(b.Context(), replica.Position{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, res.RDB); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if _, err := c.Next(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
		c.Close()
	}
}
