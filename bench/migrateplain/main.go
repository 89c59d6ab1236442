// Command migrateplain is the baseline of bench/migrate.sh: a plain go-redis
// copy of every key of db 0 from one server to another, the way a team
// would write it without redback. One goroutine SCANs (COUNT 1000); N
// workers each take a batch of keys, pipeline DUMP + PTTL on the source,
// then pipeline RESTORE key ttl payload REPLACE on the target. Both clients
// have a pool of N connections. Prints "keys seconds keys/s".
//
// Usage: migrateplain -from 127.0.0.1:6380 -to 127.0.0.1:6379 [-conns 8] [-batch 1000]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	from := flag.String("from", "", "source host:port")
	to := flag.String("to", "", "target host:port")
	conns := flag.Int("conns", 8, "connections (and workers) per server")
	batch := flag.Int("batch", 1000, "keys per pipeline")
	flag.Parse()
	if *from == "" || *to == "" {
		fmt.Fprintln(os.Stderr, "usage: migrateplain -from HOST:PORT -to HOST:PORT [-conns 8] [-batch 1000]")
		os.Exit(2)
	}
	ctx := context.Background()
	src := redis.NewClient(&redis.Options{Addr: *from, PoolSize: *conns, DisableIdentity: true})
	dst := redis.NewClient(&redis.Options{Addr: *to, PoolSize: *conns, DisableIdentity: true})
	defer src.Close()
	defer dst.Close()

	start := time.Now()
	keys := make(chan []string, *conns)
	var copied atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *conns+1)
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ks := range keys {
				p := src.Pipeline()
				dumps := make([]*redis.StringCmd, len(ks))
				ttls := make([]*redis.DurationCmd, len(ks))
				for i, k := range ks {
					dumps[i] = p.Dump(ctx, k)
					ttls[i] = p.PTTL(ctx, k)
				}
				if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
					errs <- err
					return
				}
				q := dst.Pipeline()
				n := 0
				for i, k := range ks {
					v, err := dumps[i].Result()
					if err != nil {
						continue // vanished
					}
					ttl := ttls[i].Val()
					if ttl < 0 {
						ttl = 0
					}
					q.RestoreReplace(ctx, k, ttl, v)
					n++
				}
				if _, err := q.Exec(ctx); err != nil {
					errs <- err
					return
				}
				copied.Add(int64(n))
			}
		}()
	}
	var cursor uint64
	for i := 0; ; i++ {
		ks, next, err := src.Scan(ctx, cursor, "*", int64(*batch)).Result()
		if err != nil {
			errs <- err
			break
		}
		if len(ks) > 0 {
			keys <- ks
		}
		cursor = next
		if cursor == 0 {
			break
		}
	}
	close(keys)
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintln(os.Stderr, "migrateplain:", err)
		os.Exit(1)
	}
	s := time.Since(start).Seconds()
	fmt.Printf("%d %.3f %.0f\n", copied.Load(), s, float64(copied.Load())/s)
}
