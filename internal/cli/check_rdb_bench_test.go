package cli

import (
	"io"
	"testing"

	"redback/internal/redistest"
)

// Benchmarks over a real RDB named by REDBACK_BENCH_RDB (redistest.BenchRDB).
// Profile with: go test -run '^$' -bench CheckRDB -cpuprofile cpu.out ./internal/cli
func BenchmarkCheckRDB(b *testing.B) {
	p := redistest.BenchRDB(b)
	for b.Loop() {
		if code := Run(b.Context(), []string{"check", "rdb", p}, Stdio{Out: io.Discard, Err: io.Discard}); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}

func BenchmarkDigest(b *testing.B) {
	p := redistest.BenchRDB(b)
	for b.Loop() {
		if code := Run(b.Context(), []string{"digest", p}, Stdio{Out: io.Discard, Err: io.Discard}); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}
