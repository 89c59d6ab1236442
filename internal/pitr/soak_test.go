package pitr_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/pitr"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/ship"
	"redback/internal/storage/file"
)

// Environment of the shipper child process of TestReliability_PITRSoak.
const (
	soakChildSource = "REDBACK_PITR_SOAK_SOURCE"
	soakChildRepo   = "REDBACK_PITR_SOAK_REPO"
)

func TestMain(m *testing.M) {
	if src := os.Getenv(soakChildSource); src != "" {
		os.Exit(soakShipChild(src, os.Getenv(soakChildRepo)))
	}
	os.Exit(m.Run())
}

// soakShipChild ships source into the file repository repo with ack
// durable until it is killed or interrupted.
func soakShipChild(source, repo string) int {
	u, err := redisurl.Parse(source, redisurl.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	b, err := file.New(repo)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	s := &ship.Shipper{Source: u, Backend: b, Interval: 50 * time.Millisecond, Ack: ship.AckDurable, Tick: ship.DefaultTick,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// soakPoint is a quiet point of the soak: nothing was written between the
// moment the round's writes were durable and At.
type soakPoint struct {
	round  int
	at     time.Time
	digest string
	// outage: the shipper was down (killed) when the point was taken.
	outage bool
	// flush: the round ended with a FLUSHALL; before is the digest just
	// before it and after the time just before it was sent.
	flush       bool
	flushDigest string
	flushAfter  time.Time
}

// TestReliability_PITRSoak is the randomized point-in-time soak of issue
// 23: rounds of random writes across four dbs (MULTI/EXEC, EVAL, SWAPDB,
// MOVE, COPY, TTLs, streams with groups, ...), a quiet point after each
// round recorded with DEBUG DIGEST, FLUSHALL rounds, kill -9 of the
// shipper (a child process) and dropped replication links (CLIENT KILL
// TYPE replica), then every point restored with --at (and the FLUSHALLs
// with --before-command) to a directory, loaded by redis-server and
// compared by digest. A point may be refused as uncertain (its time falls
// where the log only bounds when commands ran); it may never be wrong.
// Short by default; REDBACK_RELIABILITY=1 runs the long version.
func TestReliability_PITRSoak(t *testing.T) {
	rounds, kills, seed := 8, 1, uint64(time.Now().UnixNano())
	if os.Getenv("REDBACK_RELIABILITY") != "" {
		rounds, kills = 100, 6
	}
	if v := os.Getenv("REDBACK_SOAK_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (REDBACK_SOAK_SEED), %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 23))
	ctx := t.Context()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	dir := t.TempDir()
	var child *exec.Cmd
	var childLog strings.Builder
	startChild := func() {
		child = exec.Command(exe, "-test.run=^$")
		child.Env = append(os.Environ(), soakChildSource+"="+src.URL(), soakChildRepo+"="+dir)
		child.Stderr = &childLog
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
	}
	stopChild := func(sig os.Signal) {
		_ = child.Process.Signal(sig)
		_ = child.Wait()
		child = nil
	}
	t.Cleanup(func() {
		if child != nil {
			stopChild(os.Kill)
		}
	})
	clients := map[int]*redis.Client{}
	for db := 0; db < 4; db++ {
		clients[db] = redis.NewClient(&redis.Options{Addr: src.Addr(), DB: db, DisableIdentity: true, MaxRetries: -1})
		defer clients[db].Close()
	}
	c0 := clients[0]
	// durable waits until every write made so far is in the repository
	// (the child acks durable offsets, so WAIT counts stored writes).
	durable := func(timeout time.Duration) bool {
		for i := 0; i < 3; i++ {
			n, err := c0.Do(ctx, "WAIT", 1, timeout.Milliseconds()).Int()
			if err == nil && n >= 1 {
				return true
			}
			if timeout < time.Second {
				return false
			}
		}
		return false
	}
	startChild()
	for i := 0; i < 300 && !durable(100*time.Millisecond); i++ {
		c0.Set(ctx, "soak:start", i, 0)
	}

	killRounds := map[int]bool{}
	for len(killRounds) < kills && len(killRounds) < rounds-2 {
		killRounds[1+rng.IntN(rounds-2)] = true
	}
	var points []soakPoint
	down := 0 // rounds left in an outage
	drops := 0
	for round := 0; round < rounds; round++ {
		switch {
		case down > 0:
			if down--; down == 0 {
				startChild()
			}
		case killRounds[round]:
			stopChild(os.Kill) // kill -9
			down = 1 + rng.IntN(2)
		}
		n := 20 + rng.IntN(60)
		for i := 0; i < n; i++ {
			if child != nil && down == 0 && i == n/2 && rng.IntN(4) == 0 {
				// A dropped replication link: the shipper reconnects with
				// PSYNC +CONTINUE.
				if err := c0.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err == nil {
					drops++
				}
			}
			soakWrite(ctx, t, rng, clients)
		}
		p := soakPoint{round: round}
		if rng.IntN(8) == 0 {
			p.flush = true
			if down == 0 {
				durable(5 * time.Second)
			}
			p.flushDigest = src.Digest(ctx)
			p.flushAfter = time.Now()
			time.Sleep(5 * time.Millisecond)
			if err := c0.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			soakWrite(ctx, t, rng, clients)
		}
		if down == 0 {
			if !durable(10 * time.Second) {
				t.Fatalf("round %d: the shipper did not store the writes within 10 s:\n%s", round, childLog.String())
			}
		}
		p.digest, p.outage = src.Digest(ctx), down > 0
		time.Sleep(5 * time.Millisecond)
		p.at = time.Now()
		time.Sleep(5 * time.Millisecond)
		points = append(points, p)
	}
	if child == nil {
		startChild()
	}
	c0.Set(ctx, "soak:end", 1, 0)
	if !durable(30 * time.Second) {
		t.Fatalf("the shipper did not catch up:\n%s", childLog.String())
	}
	stopChild(os.Interrupt)

	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	var restores, exact, refused, wrong, flushes int
	for _, p := range points {
		restores++
		plan, err := pitr.NewPlan(ctx, b, pitr.AtTime(p.at), pitr.Options{})
		switch {
		case errors.Is(err, pitr.ErrUncertain):
			refused++
			t.Logf("round %d (outage %v): refused: %v", p.round, p.outage, err)
		case err != nil:
			wrong++
			t.Errorf("round %d: --at %s: %v", p.round, p.at.Format(time.RFC3339Nano), err)
		default:
			if got := toDir(t, plan); got != p.digest {
				wrong++
				t.Errorf("round %d (outage %v): --at %s restored digest %s, want %s (offset %d)", p.round, p.outage, p.at.Format(time.RFC3339Nano), got, p.digest, plan.Offset)
			} else {
				exact++
			}
		}
		if !p.flush {
			continue
		}
		restores++
		flushes++
		plan, err = pitr.NewPlan(ctx, b, pitr.BeforeCommand(pitr.CommandMatch{Name: "FLUSHALL", After: p.flushAfter}), pitr.Options{})
		if err != nil {
			wrong++
			t.Errorf("round %d: --before-command FLUSHALL: %v", p.round, err)
			continue
		}
		if got := toDir(t, plan); got != p.flushDigest {
			wrong++
			t.Errorf("round %d: --before-command FLUSHALL restored digest %s, want %s", p.round, got, p.flushDigest)
		} else {
			exact++
		}
	}
	t.Logf("PITR soak: seed %d, %d rounds, %d kill -9, %d dropped links, %d FLUSHALL; %d restores: %d exact, %d refused as uncertain, %d wrong",
		seed, rounds, kills, drops, flushes, restores, exact, refused, wrong)
	if testing.Verbose() && wrong > 0 {
		t.Logf("shipper log:\n%s", childLog.String())
	}
}

// soakWrite sends one random write (most of them change data; some fail
// on the wrong type, and a failed command is not propagated).
func soakWrite(ctx context.Context, t *testing.T, rng *rand.Rand, clients map[int]*redis.Client) {
	t.Helper()
	db := rng.IntN(4)
	c := clients[db]
	k := func() string { return "k" + strconv.Itoa(rng.IntN(24)) }
	v := strconv.Itoa(rng.IntN(1000))
	var args []any
	switch rng.IntN(26) {
	case 0:
		args = []any{"SET", k(), v}
	case 1:
		args = []any{"INCRBY", "n" + strconv.Itoa(rng.IntN(4)), rng.IntN(10)}
	case 2:
		args = []any{"HSET", "h" + strconv.Itoa(rng.IntN(6)), "f" + v[:1], v}
	case 3:
		args = []any{"RPUSH", "l" + strconv.Itoa(rng.IntN(6)), v, v + "x"}
	case 4:
		args = []any{"LPOP", "l" + strconv.Itoa(rng.IntN(6))}
	case 5:
		args = []any{"SADD", "s" + strconv.Itoa(rng.IntN(6)), v}
	case 6:
		args = []any{"ZADD", "z" + strconv.Itoa(rng.IntN(6)), rng.Float64() * 100, v}
	case 7:
		args = []any{"ZINCRBY", "z" + strconv.Itoa(rng.IntN(6)), 1.5, v}
	case 8:
		args = []any{"DEL", k(), k()}
	case 9:
		args = []any{"EXPIRE", k(), 3600 + rng.IntN(3600)}
	case 10:
		args = []any{"PERSIST", k()}
	case 11:
		args = []any{"SETEX", k(), 7200, v}
	case 12:
		args = []any{"APPEND", k(), v}
	case 13:
		args = []any{"XADD", "x" + strconv.Itoa(rng.IntN(3)), "*", "f", v}
	case 14:
		args = []any{"XGROUP", "CREATE", "x" + strconv.Itoa(rng.IntN(3)), "g", "0", "MKSTREAM"}
	case 15:
		args = []any{"XREADGROUP", "GROUP", "g", "c" + v[:1], "COUNT", 2, "STREAMS", "x" + strconv.Itoa(rng.IntN(3)), ">"}
	case 16:
		args = []any{"XTRIM", "x" + strconv.Itoa(rng.IntN(3)), "MAXLEN", 5}
	case 17:
		args = []any{"SWAPDB", rng.IntN(4), rng.IntN(4)}
	case 18:
		args = []any{"MOVE", k(), rng.IntN(4)}
	case 19:
		args = []any{"COPY", k(), k(), "DB", rng.IntN(4), "REPLACE"}
	case 20:
		args = []any{"EVAL", "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])", 2, k(), "n" + strconv.Itoa(rng.IntN(4)), v}
	case 21:
		args = []any{"RENAME", k(), k()}
	case 22:
		args = []any{"LMOVE", "l" + strconv.Itoa(rng.IntN(6)), "l" + strconv.Itoa(rng.IntN(6)), "LEFT", "RIGHT"}
	case 23:
		args = []any{"PEXPIREAT", k(), time.Now().Add(48 * time.Hour).UnixMilli()}
	case 24:
		args = []any{"HINCRBY", "h" + strconv.Itoa(rng.IntN(6)), "cnt", 1}
	default:
		// A transaction over two dbs.
		_, _ = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, k(), v, 0)
			p.Incr(ctx, "n0")
			p.Do(ctx, "SELECT", (db+1)%4)
			p.SAdd(ctx, "s0", v)
			return nil
		})
		// (The SELECT inside moves that pooled connection to another db:
		// later writes on it land there, which is as random as before.)
		return
	}
	err := c.Do(ctx, args...).Err()
	var rerr redis.Error
	if err != nil && err != redis.Nil && !errors.As(err, &rerr) {
		t.Fatalf("%v: %v", args, err)
	}
}
