package snapshot

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"redback/internal/pack"
	"redback/internal/redistest"
	"redback/internal/redisurl"
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

// BenchmarkTakeSync snapshots a scratch redis-server loaded with the RDB
// named by REDBACK_BENCH_RDB over the replication protocol, into a file
// repository: the profile shows the client side of `redback snapshot`.
func BenchmarkTakeSync(b *testing.B) {
	p := redistest.BenchRDB(b)
	dir := b.TempDir()
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dump.rdb"), data, 0o600); err != nil {
		b.Fatal(err)
	}
	data = nil
	s := redistest.StartInDir(b, dir, "--repl-diskless-sync-delay", "0")
	u, err := redisurl.Parse(s.URL(), redisurl.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		be, err := file.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := TakeSync(b.Context(), u, Options{Backend: be, Method: "sync", Pack: pack.Options{Level: zstd.SpeedFastest}}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
