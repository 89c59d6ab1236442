package restore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"redback/internal/redistest"
)

// heapPeak runs fn and returns the highest HeapInuse seen while it ran
// (sampled every 5 ms, after a GC).
func heapPeak(fn func()) uint64 {
	runtime.GC()
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return peak.Load()
}

// bigValues writes a list of 64 MiB of elements (with a TTL), a hash and a
// set of a few MiB, a stream of a few MiB with a consumer group, a 3 MiB
// string and small keys into s, RDB compression off (93 MB of RDB).
func bigValues(t *testing.T, ctx context.Context, s *redistest.Server) {
	t.Helper()
	c := s.Client()
	if err := c.ConfigSet(ctx, "rdbcompression", "no").Err(); err != nil {
		t.Fatal(err)
	}
	// Elements of 64 bytes: a number and 56 pseudo-random hex digits.
	rng := rand.New(rand.NewPCG(1, 2))
	pad := func() string {
		return fmt.Sprintf("-%016x%016x%016x%08x", rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint32())
	}
	const perCmd = 1000
	for i := 0; i < 1<<20; i += perCmd {
		args := make([]any, 0, perCmd)
		for j := i; j < min(i+perCmd, 1<<20); j++ {
			args = append(args, strconv.Itoa(j)+pad())
		}
		if err := c.RPush(ctx, "big:list", args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.PExpireAt(ctx, "big:list", time.UnixMilli(farFuture))
	for i := 0; i < 100_000; i += perCmd {
		h := make([]any, 0, 2*perCmd)
		m := make([]any, 0, perCmd)
		for j := i; j < i+perCmd; j++ {
			h = append(h, "f"+strconv.Itoa(j), strconv.Itoa(j)+pad())
			m = append(m, strconv.Itoa(j)+pad())
		}
		c.HSet(ctx, "big:hash", h...)
		c.SAdd(ctx, "big:set", m...)
	}
	p := c.Pipeline()
	for i := 1; i <= 50_000; i++ {
		p.Do(ctx, "XADD", "big:stream", strconv.Itoa(i)+"-1", "event", strconv.Itoa(i)+pad())
	}
	p.Do(ctx, "XGROUP", "CREATE", "big:stream", "g", "0")
	p.Do(ctx, "XREADGROUP", "GROUP", "g", "alice", "COUNT", "3", "STREAMS", "big:stream", ">")
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for range 3 {
		for i := range chunk {
			chunk[i] = byte(rng.Uint32())
		}
		c.Append(ctx, "big:string", string(chunk))
	}
	for i := range 500 {
		c.Set(ctx, "small"+strconv.Itoa(i), i, 0)
	}
	c.PExpireAt(ctx, "small1", time.UnixMilli(farFuture))
	if n, err := c.LLen(ctx, "big:list").Result(); err != nil || n != 1<<20 {
		t.Fatalf("big:list has %d elements (%v)", n, err)
	}
}

// A value bigger than the memory a restore into a server may take goes
// through unheld: by RESTORE commands its serialized bytes are spooled to
// a temporary file and sent from there (as one payload, or as commands
// when the target's proto-max-bulk-len is smaller: the list, the hash and
// the set), by replication they are forwarded and digested as they
// stream. The target's DEBUG DIGEST
// and TTLs equal the source's every time, the conflict policies hold for
// a spooled value, and the heap stays well under the 64 MiB list.
func TestToRedis_BigValuesStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("a 64 MiB list")
	}
	ctx := t.Context()
	src := redistest.Start(t)
	bigValues(t, ctx, src)
	path := saveRDB(t, ctx, src)
	const bound = 40 << 20
	restore := func(t *testing.T, dst *redistest.Server, o Options) *Result {
		t.Helper()
		var res *Result
		var err error
		peak := heapPeak(func() { res, err = ToRedis(ctx, FileSource(path), targetURL(t, dst), o) })
		if err != nil {
			t.Fatalf("ToRedis: %v (%+v)", err, res)
		}
		t.Logf("HeapInuse peak %.1f MiB; %+v", float64(peak)/(1<<20), res)
		if peak > bound {
			t.Errorf("HeapInuse peak %.1f MiB, want under %d MiB", float64(peak)/(1<<20), bound>>20)
		}
		compareServers(t, ctx, src, dst)
		return res
	}
	for _, m := range []Method{MethodRestore, MethodReplicate} {
		t.Run(m.String(), func(t *testing.T) {
			dst := redistest.Start(t)
			res := restore(t, dst, Options{Method: m})
			if res.Method != m.String() {
				t.Errorf("method %s, want %s", res.Method, m)
			}
		})
	}
	t.Run("Conflicts", func(t *testing.T) {
		dst := redistest.Start(t)
		restore(t, dst, Options{})
		c := dst.Client()
		c.LSet(ctx, "big:list", 5, "changed")
		// skip keeps the target's big value, replace puts the source's back.
		res, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Conflict: ConflictSkip})
		if err != nil || res.KeysRestored != 0 || res.KeysSkipped == 0 {
			t.Fatalf("skip: %v, %+v", err, res)
		}
		if v, _ := c.LIndex(ctx, "big:list", 5).Result(); v != "changed" {
			t.Errorf("skip: element 5 is %q, want the target's", v)
		}
		restore(t, dst, Options{Conflict: ConflictReplace})
		// fail refuses the non-empty target before writing anything.
		if _, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{}); err == nil {
			t.Error("ConflictFail into a full target: no error")
		}
	})
	t.Run("Converted", func(t *testing.T) {
		dst := redistest.Start(t)
		if err := dst.Client().ConfigSet(ctx, "proto-max-bulk-len", "4mb").Err(); err != nil {
			t.Fatal(err)
		}
		res := restore(t, dst, Options{Method: MethodRestore})
		if res.KeysConverted < 3 {
			t.Errorf("%d keys converted, want the big values", res.KeysConverted)
		}
	})
}
