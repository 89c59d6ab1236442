package restore

import (
	"os"
	"path/filepath"
	"testing"

	"redback/internal/redistest"
	"redback/internal/redisurl"
)

// BenchmarkToDir restores the RDB named by REDBACK_BENCH_RDB (see
// redistest.BenchRDB) into a data dir, checking every value. Profile with:
//
//	REDBACK_BENCH_RDB=$PWD/bench/out/dataset/dump.rdb go test -run '^$' -bench ToDir -cpuprofile cpu.out ./internal/restore
func BenchmarkToDir(b *testing.B) {
	p := redistest.BenchRDB(b)
	dir := b.TempDir()
	for b.Loop() {
		os.Remove(filepath.Join(dir, "dump.rdb"))
		if _, err := ToDir(b.Context(), FileSource(p), dir, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkToRedis restores the RDB named by REDBACK_BENCH_RDB into a
// scratch redis-server (flushed before each run). The profile shows the
// client's share only; the server's CPU is in its INFO cpu.
func BenchmarkToRedis(b *testing.B) {
	p := redistest.BenchRDB(b)
	s := redistest.Start(b)
	u, err := redisurl.Parse(s.URL(), redisurl.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		if err := s.Client().FlushAll(b.Context()).Err(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := ToRedis(b.Context(), FileSource(p), u, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
