package cli

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/redistest"
)

// TestReliability_KillNine is the kill -9 suite of issue 13: `redback ship`
// and `redback agent` (each a child process: this test binary re-executed
// as redback, which runs cli.Run exactly as cmd/redback does) are killed
// with SIGKILL at random moments while a client writes, restarted, and
// killed again. One connection writes `INCR seq` and waits with `WAIT 1`
// (the shipper acknowledges durable offsets only, --ack durable); after
// each kill a restore of the newest durable point (`restore --at latest`)
// into a scratch server must hold seq at least at the last acknowledged
// value: no acknowledged write is lost. At the end the repository verifies
// clean, holds no silent gap, and a restore of the newest durable point is
// digest-equal to the source at a quiet point. Short by default (3 kills
// each); REDBACK_RELIABILITY=1 runs 50 each.
func TestReliability_KillNine(t *testing.T) {
	kills := 3
	if os.Getenv("REDBACK_RELIABILITY") == "1" {
		kills = 50
	}
	for _, verb := range []string{"ship", "agent"} {
		t.Run(verb, func(t *testing.T) { killNine(t, verb, kills) })
	}
}

func killNine(t *testing.T, verb string, kills int) {
	ctx := t.Context()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("REDBACK_SOAK_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 13))
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	dst := redistest.Start(t)
	dir := t.TempDir()
	repo := "file://" + filepath.Join(dir, "repo")
	args := []string{"ship", "--source", src.URL(), "--repo", repo, "--ack", "durable", "--interval", "100ms"}
	if verb == "agent" {
		cfg := filepath.Join(dir, "agent.yaml")
		yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
grace_period: 5s
sources:
  - name: kill9
    source: %s
    repo: %s
    snapshot: {method: sync, every: 1h}
    ship: {enabled: true, interval: 100ms, ack: durable}
    drill: {schedule: "0 3 1 * *", rto_objective: 1m}
`, redistest.FreePort(t), src.URL(), repo)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		args = []string{"agent", "--config", cfg}
	}

	ld := startWriteLoad(t, src, seed)
	defer ld.stop()

	checked, lost := 0, 0
	for i := 0; i < kills; i++ {
		p := startRedback(t, append([]string{}, args...)...)
		time.Sleep(time.Duration(100+rng.IntN(2900)) * time.Millisecond)
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		p.wait(10 * time.Second)
		// Every write acknowledged before the kill must be in the newest
		// durable point.
		want := ld.acked.Load()
		if want == 0 {
			continue
		}
		if err := dst.Client().FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", dst.URL())
		if code != ExitOK {
			t.Fatalf("kill %d: restore --at latest: exit %d\n%s%s\nlast process:\n%s", i, code, out, errs, p.out.String())
		}
		got, _ := dst.Client().Get(ctx, "seq").Int64()
		checked++
		if got < want {
			lost++
			t.Errorf("kill %d: the newest durable point holds seq %d, but %d was acknowledged (WAIT) before the kill", i, got, want)
		}
	}

	// The last run: catch up at a quiet point, stop cleanly.
	p := startRedback(t, append([]string{}, args...)...)
	ld.stop()
	if !ld.durable(60 * time.Second) {
		t.Fatalf("the last %s did not store the writes within 60 s:\n%s", verb, p.out.String())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("the last %s: exit %d after SIGTERM\n%s", verb, code, p.out.String())
	}
	gens := checkQuietRepo(t, repo, dst)
	if got, want := dst.Digest(ctx), src.Digest(context.Background()); got != want {
		t.Fatalf("restored digest %s, want the source's %s", got, want)
	}
	t.Logf("kill -9 of %s: seed %d (REDBACK_SOAK_SEED), %d kills, %d restores checked after a kill, %d acknowledged writes lost; "+
		"%d writes, %d acknowledged by WAIT (last seq %d); %d generation(s), 0 silent gaps; verify clean; final restore digest-equal",
		verb, seed, kills, checked, lost, ld.writes.Load(), ld.ackedWrites.Load(), ld.acked.Load(), gens)
}

// checkQuietRepo checks repo at a quiet point: no silent gap or overlap in
// any generation, verify exits 0, and the newest durable point restores
// (`restore --at latest`) into dst, emptied first. It returns the number of
// generations.
func checkQuietRepo(t *testing.T, repo string, dst *redistest.Server) int {
	t.Helper()
	gens := 0
	for _, w := range listRepo(t, repo).Generations {
		gens++
		for _, g := range w.Gaps {
			t.Errorf("generation %s has a silent gap or overlap %+v", w.Generation, g)
		}
	}
	if code, out, errs := runCLI(t, "verify", "--repo", repo); code != ExitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	if err := dst.Client().FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", dst.URL()); code != ExitOK {
		t.Fatalf("restore --at latest: exit %d\n%s%s", code, out, errs)
	}
	return gens
}

// writeLoad is the write load of the fault tests: one connection writes
// `INCR seq` then `WAIT 1 500` in a loop (WAIT counts the writes of its
// own connection; with --ack durable a replica acknowledges stored
// offsets), and another sends pipelined batches of random writes (TTLs of
// hours, so nothing expires during a test).
type writeLoad struct {
	ctx                        context.Context
	ackc                       *redis.Client
	acked, writes, ackedWrites atomic.Int64 // last acknowledged seq, writes sent, writes acknowledged
	done                       chan struct{}
	once                       sync.Once
	wg                         sync.WaitGroup
}

func startWriteLoad(t *testing.T, src *redistest.Server, seed uint64) *writeLoad {
	ctx := t.Context()
	l := &writeLoad{ctx: ctx, done: make(chan struct{}),
		// No read timeout: WAIT's own timeout bounds each call.
		ackc: redis.NewClient(&redis.Options{Addr: src.Addr(), PoolSize: 1, DisableIdentity: true, MaxRetries: -1,
			ReadTimeout: -1, PoolTimeout: 10 * time.Minute})}
	t.Cleanup(func() { l.stop(); l.ackc.Close() })
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case <-l.done:
				return
			default:
			}
			v, err := l.ackc.Incr(ctx, "seq").Result()
			if err != nil {
				return
			}
			if n, err := l.ackc.Do(ctx, "WAIT", 1, 500).Int(); err == nil && n >= 1 {
				l.acked.Store(v)
				l.ackedWrites.Add(1)
			}
		}
	}()
	go func() {
		defer l.wg.Done()
		lr := rand.New(rand.NewPCG(seed, 14))
		c := src.Client()
		for i := 0; ; i++ {
			select {
			case <-l.done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			p := c.Pipeline()
			for j := 0; j < 20; j++ {
				k := "k" + strconv.Itoa(lr.IntN(500))
				switch lr.IntN(6) {
				case 0:
					p.Set(ctx, k, i, 0)
				case 1:
					p.HSet(ctx, "h"+k, "f"+strconv.Itoa(j), i)
				case 2:
					p.RPush(ctx, "l"+k, i)
				case 3:
					p.Del(ctx, k)
				case 4:
					p.SetEx(ctx, k, strconv.Itoa(i), 3*time.Hour)
				default:
					p.ZAdd(ctx, "z"+k, redis.Z{Score: float64(i), Member: j})
				}
			}
			if _, err := p.Exec(ctx); err != nil && ctx.Err() != nil {
				return
			}
			l.writes.Add(20)
		}
	}()
	return l
}

// stop ends the load (the writes made so far stay).
func (l *writeLoad) stop() {
	l.once.Do(func() {
		close(l.done)
		l.wg.Wait()
	})
}

// durable reports whether every write of the acknowledged connection is
// stored within d (one more write, then WAIT 1).
func (l *writeLoad) durable(d time.Duration) bool {
	v, err := l.ackc.Incr(l.ctx, "seq").Result()
	if err != nil {
		return false
	}
	n, err := l.ackc.Do(l.ctx, "WAIT", 1, d.Milliseconds()).Int()
	if err != nil || n < 1 {
		return false
	}
	l.acked.Store(v)
	return true
}
