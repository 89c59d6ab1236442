// Command shiplag is the write→durable probe of bench/ship.sh. On ONE
// connection to the primary it repeats, until SIGINT/SIGTERM, -max probes or
// -duration: SET probe:<i> <unix ns>, then WAIT 1 <timeout>, and records the
// time from before the SET until WAIT returns. WAIT counts only the writes of
// its own connection, and with `redback ship --ack durable` the only replica
// acknowledges only offsets stored in the repository, so a probe that
// returns 1 measured exactly write → durable (+ the ACK that reports it).
//
// The connection blocks in WAIT, so probes are sequential. Before each probe
// it sleeps -every plus a uniform random delay in [0, -jitter): the shipper
// sends REPLCONF ACK on a fixed 1 s heartbeat, and a probe started right
// after the previous WAIT returned (i.e. right after an ACK) would always
// see the worst phase of that heartbeat; the jitter makes the probe's phase
// uniform, like independent writes.
//
// Prints one line: "probes N timeouts T errors E p50_ms X p99_ms Y max_ms Z"
// (nearest-rank percentiles over all probes; a timed-out probe counts with
// its measured latency, i.e. at least the WAIT timeout). With -raw FILE it
// also writes every latency in ms, one a line, "timeout" marked.
//
// Usage: shiplag -addr 127.0.0.1:6379 [-every 100ms] [-jitter 1s] [-max 600] [-duration 120s] [-timeout 5s] [-raw FILE]
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

type probe struct {
	ms      float64
	timeout bool
}

func main() {
	addr := flag.String("addr", "", "primary host:port")
	every := flag.Duration("every", 100*time.Millisecond, "pause between probes")
	jitter := flag.Duration("jitter", time.Second, "extra uniform random pause in [0, jitter) before each probe")
	maxN := flag.Int("max", 600, "at most this many probes")
	duration := flag.Duration("duration", 120*time.Second, "stop starting probes after this long")
	timeout := flag.Duration("timeout", 5*time.Second, "WAIT timeout")
	raw := flag.String("raw", "", "write every latency (ms) to this file")
	flag.Parse()
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "usage: shiplag -addr HOST:PORT [-every 100ms] [-jitter 1s] [-max 600] [-duration 120s] [-timeout 5s] [-raw FILE]")
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: *addr, PoolSize: 1, DisableIdentity: true})
	defer rdb.Close()
	conn := rdb.Conn() // one pinned connection: WAIT counts its writes only
	defer conn.Close()

	var probes []probe
	errs := 0
	deadline := time.Now().Add(*duration)
loop:
	for i := 0; i < *maxN && time.Now().Before(deadline); i++ {
		pause := *every
		if *jitter > 0 {
			pause += rand.N(*jitter)
		}
		select {
		case <-stop:
			break loop
		case <-time.After(pause):
		}
		pctx, cancel := context.WithTimeout(ctx, *timeout+10*time.Second)
		t0 := time.Now()
		err := conn.Set(pctx, "probe:"+strconv.Itoa(i), strconv.FormatInt(t0.UnixNano(), 10), 0).Err()
		var n int64
		if err == nil {
			n, err = conn.Wait(pctx, 1, *timeout).Result()
		}
		ms := float64(time.Since(t0).Microseconds()) / 1000
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "shiplag:", err)
			if errs++; errs >= 10 {
				break
			}
			continue
		}
		probes = append(probes, probe{ms: ms, timeout: n < 1})
	}

	if *raw != "" {
		f, err := os.Create(*raw)
		if err == nil {
			for _, p := range probes {
				if p.timeout {
					fmt.Fprintf(f, "%.1f timeout\n", p.ms)
				} else {
					fmt.Fprintf(f, "%.1f\n", p.ms)
				}
			}
			f.Close()
		}
	}
	lat := make([]float64, 0, len(probes))
	timeouts := 0
	for _, p := range probes {
		lat = append(lat, p.ms)
		if p.timeout {
			timeouts++
		}
	}
	slices.Sort(lat)
	rank := func(q float64) float64 { // nearest rank
		if len(lat) == 0 {
			return math.NaN()
		}
		return lat[max(int(math.Ceil(q*float64(len(lat))))-1, 0)]
	}
	last := math.NaN()
	if len(lat) > 0 {
		last = lat[len(lat)-1]
	}
	fmt.Printf("probes %d timeouts %d errors %d p50_ms %.0f p99_ms %.0f max_ms %.0f\n",
		len(lat), timeouts, errs, rank(0.50), rank(0.99), last)
}
