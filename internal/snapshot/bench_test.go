package snapshot

import (
	"os"
	"testing"

	"github.com/klauspost/compress/zstd"

	"redback/internal/pack"
	"redback/internal/redistest"
	"redback/internal/storage/file"
)

// BenchmarkStore runs the whole snapshot pipeline (verify, digest, zstd,
// sha256, file repository) over the RDB named by REDBACK_BENCH_RDB (for
// example bench/out/dataset/dump.rdb from bench/dataset.sh); skipped when
// unset. Profile with:
//
//	REDBACK_BENCH_RDB=$PWD/bench/out/dataset/dump.rdb go test -run '^$' -bench Store -cpuprofile cpu.out ./internal/snapshot
func BenchmarkStore(b *testing.B) {
	p := redistest.BenchRDB(b)
	for b.Loop() {
		be, err := file.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		_, err = Store(b.Context(), f, Options{Backend: be, Method: "rdb-file", Pack: pack.Options{Level: zstd.SpeedFastest}})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}
