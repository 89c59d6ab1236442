package cli

import (
	"io"
	"os"
	"testing"
)

// Benchmarks over a real RDB named by REDBACK_BENCH_RDB (for example
// bench/out/dataset/dump.rdb from bench/dataset.sh); skipped when unset.
// Profile with: go test -run '^$' -bench CheckRDB -cpuprofile cpu.out ./internal/cli
func benchRDB(b *testing.B) string {
	p := os.Getenv("REDBACK_BENCH_RDB")
	if p == "" {
		b.Skip("REDBACK_BENCH_RDB is not set")
	}
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	return p
}

func BenchmarkCheckRDB(b *testing.B) {
	p := benchRDB(b)
	for b.Loop() {
		if code := Run(b.Context(), []string{"check", "rdb", p}, Stdio{Out: io.Discard, Err: io.Discard}); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}

func BenchmarkDigest(b *testing.B) {
	p := benchRDB(b)
	for b.Loop() {
		if code := Run(b.Context(), []string{"digest", p}, Stdio{Out: io.Discard, Err: io.Discard}); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}
