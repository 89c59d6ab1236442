package cli

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/redistest"
)

// soakDBs are the dbs the soak's load writes (redis-benchmark --dbnum).
const soakDBs = 4

// soakShortTTL bounds the short expirations of the soak's load: a key that
// had one at a point has expired soakShortTTL after it.
const soakShortTTL = 1500 * time.Millisecond

// TestReliability_BenchSoak is the soak of issue 13: redis-benchmark load
// with a randomized mix of commands (strings, counters, lists, sets,
// hashes, sorted sets, streams, HyperLogLog, bitmaps, scripts (replicated
// as MULTI/EXEC), COPY, FLUSHDB, and expirations: short ones that expire
// during the run, long ones, PERSIST) across four dbs, while `redback ship
// --ack durable` ships continuously. Every round, at a random moment, a
// replica of the source (the oracle) is frozen (REPLICAOF NO ONE): it holds
// exactly the source's state at its replication offset O. `restore
// --to-offset O` into a scratch server must be digest-equal to it (DEBUG
// DIGEST, after both dropped the keys whose short TTL passed). The oracle
// then resyncs and the load goes on. Every few rounds `snapshot --from-log`
// adds a nearer base, as the agent's method log would. At the end, at a
// quiet point, `verify` exits 0 and `restore --at latest` is digest-equal
// to the source. Short by default (3 rounds, ~12 s apart);
// REDBACK_RELIABILITY=1 runs 20 rounds a minute apart (REDBACK_SOAK_ROUNDS
// overrides the count).
func TestReliability_BenchSoak(t *testing.T) {
	rounds, every, snapEvery := 3, 12*time.Second, "15s"
	if os.Getenv("REDBACK_RELIABILITY") == "1" {
		rounds, every, snapEvery = 20, time.Minute, "3m"
	}
	if v, err := strconv.Atoi(os.Getenv("REDBACK_SOAK_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("REDBACK_SOAK_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 31))
	bench := redistest.Tool(t, "redis-benchmark")
	ctx := t.Context()
	start := time.Now()

	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	// The oracle never expires keys itself while frozen but when told to
	// (SCAN), so its offset stays the point's.
	oracle := redistest.Start(t)
	dst := redistest.Start(t)
	if err := oracle.Client().Do(ctx, "DEBUG", "SET-ACTIVE-EXPIRE", "0").Err(); err != nil {
		t.Fatal(err)
	}
	attachOracle(t, oracle, src)
	dir := t.TempDir()
	repo := "file://" + filepath.Join(dir, "repo")
	cfg := filepath.Join(dir, "agent.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
grace_period: 5s
sources:
  - name: soak
    source: %s
    repo: %s
    snapshot: {method: log, every: %s}
    ship: {enabled: true, interval: 500ms, ack: durable}
    drill: {schedule: "0 3 1 * *", rto_objective: 1m}
`, redistest.FreePort(t), src.URL(), repo, snapEvery)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ship := startRedback(t, "agent", "--config", cfg)

	ld := startBenchLoad(t, bench, src, seed)
	defer ld.stop()

	mismatches := 0
	var restoreTime, longestRestore time.Duration
	for round := range rounds {
		time.Sleep(every/2 + time.Duration(rng.Int64N(int64(every/2))))
		if err := oracle.Client().Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
			t.Fatal(err)
		}
		frozen := time.Now()
		info, err := oracle.Client().Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		off, err := strconv.ParseInt(infoField(info, "master_repl_offset"), 10, 64)
		if err != nil {
			t.Fatalf("round %d: the frozen oracle's offset: %v\n%s", round, err, info)
		}
		if !shippedTo(t, src, oracle.Port, off, 3*time.Minute) {
			t.Fatalf("round %d: offset %d not durable within 3 min\n%s", round, off, ship.out.String())
		}
		if err := dst.Client().FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		code, out, errs := runCLI(t, "restore", "--repo", repo, "--to-offset", strconv.FormatInt(off, 10), "--to-redis", dst.URL())
		took := time.Since(began)
		restoreTime += took
		longestRestore = max(longestRestore, took)
		if code != ExitOK {
			t.Fatalf("round %d: restore --to-offset %d: exit %d\n%s%s", round, off, code, out, errs)
		}
		time.Sleep(time.Until(frozen.Add(soakShortTTL + time.Second)))
		want, got := settledDigest(t, oracle), settledDigest(t, dst)
		if got != want {
			mismatches++
			t.Errorf("round %d: restore --to-offset %d: digest %s, the oracle frozen there %s (keys %v vs %v)",
				round, off, got, want, dbSizes(t, dst), dbSizes(t, oracle))
		}
		t.Logf("round %d: offset %d, %d keys, restore %.1fs, digest-equal %v", round, off, sum(dbSizes(t, oracle)), took.Seconds(), got == want)
		attachOracle(t, oracle, src)
	}

	// A quiet point: the load stopped, the short TTLs passed, every key
	// they ended expired at the source (and the DELs shipped).
	ld.stop()
	time.Sleep(soakShortTTL + time.Second)
	srcDigest := settledDigest(t, src)
	_, srcOff := (&shipRun{t: t, src: src}).masterInfo()
	if !shippedTo(t, src, oracle.Port, srcOff, 3*time.Minute) {
		t.Fatalf("the source's offset %d not durable within 3 min\n%s", srcOff, ship.out.String())
	}
	if err := ship.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := ship.wait(60 * time.Second); code != 0 {
		t.Fatalf("agent: exit %d after SIGTERM\n%s", code, ship.out.String())
	}
	fromLog := 0
	for _, s := range listRepo(t, repo).Snapshots {
		if s.FromLog {
			fromLog++
		}
	}
	gens := checkQuietRepo(t, repo, dst)
	if got := settledDigest(t, dst); got != srcDigest {
		mismatches++
		t.Errorf("restore --at latest: digest %s, the source's %s", got, srcDigest)
	}
	t.Logf("soak: seed %d (REDBACK_SOAK_SEED), %s; %d rounds (PITR to the oracle's offset), %d mismatches, %d snapshots synthesized from the log (method log); "+
		"%d redis-benchmark runs (%d failed), %d commands sent, final offset %d, %d keys; restores %.1fs on average, %.1fs the longest; "+
		"%d generation(s), 0 silent gaps, verify clean, final restore --at latest digest-equal %v",
		seed, time.Since(start).Round(time.Second), rounds, mismatches, fromLog, ld.runs.Load(), ld.failed.Load(), ld.commands.Load(),
		srcOff, sum(dbSizes(t, src)), restoreTime.Seconds()/float64(max(rounds, 1)), longestRestore.Seconds(), gens, mismatches == 0)
}

// attachOracle makes oracle a replica of src and waits until it is in sync
// (bounded).
func attachOracle(t *testing.T, oracle, src *redistest.Server) {
	t.Helper()
	ctx := t.Context()
	if err := oracle.Client().Do(ctx, "REPLICAOF", "127.0.0.1", src.Port).Err(); err != nil {
		t.Fatal(err)
	}
	var info string
	for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var err error
		if info, err = oracle.Client().Info(ctx, "replication").Result(); err != nil {
			t.Fatal(err)
		}
		if infoField(info, "master_link_status") == "up" && infoField(info, "master_sync_in_progress") == "0" {
			return
		}
	}
	t.Fatalf("the oracle did not sync with the source within 3 min:\n%s", info)
}

// shippedTo waits (bounded by d) until a replica of src other than the one
// on port skip (the shipper, acknowledging durable offsets) acknowledged
// offset off.
func shippedTo(t *testing.T, src *redistest.Server, skip int, off int64, d time.Duration) bool {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		info, err := src.Client().Info(t.Context(), "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(info, "\n") {
			l = strings.TrimSpace(l)
			if !strings.HasPrefix(l, "slave") || !strings.Contains(l, "offset=") || strings.Contains(l, "port="+strconv.Itoa(skip)+",") {
				continue
			}
			for _, kv := range strings.Split(l[strings.Index(l, ":")+1:], ",") {
				if v, ok := strings.CutPrefix(kv, "offset="); ok {
					if n, _ := strconv.ParseInt(v, 10, 64); n >= off {
						return true
					}
				}
			}
		}
	}
	return false
}

// settledDigest drops the keys whose TTL passed (a full SCAN of every db
// the load writes expires them on a primary) and returns DEBUG DIGEST.
func settledDigest(t *testing.T, s *redistest.Server) string {
	t.Helper()
	ctx := t.Context()
	for db := range soakDBs {
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db, DisableIdentity: true})
		it := c.Scan(ctx, 0, "", 1000).Iterator()
		for it.Next(ctx) {
		}
		err := it.Err()
		c.Close()
		if err != nil {
			t.Fatalf("SCAN db %d: %v", db, err)
		}
	}
	return s.Digest(ctx)
}

func dbSizes(t *testing.T, s *redistest.Server) []int64 {
	t.Helper()
	var n []int64
	for db := range soakDBs {
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db, DisableIdentity: true})
		v, err := c.DBSize(t.Context()).Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		n = append(n, v)
	}
	return n
}

func sum(v []int64) (s int64) {
	for _, x := range v {
		s += x
	}
	return s
}

// soakCommands are the custom commands of the soak's load besides
// redis-benchmark's own tests (the key namespaces are those tests': key:
// strings, counter: counters, mylist, myset, myhash, myzset, mystream).
var soakCommands = [][]string{
	{"SET", "exp:__rand_int__", "__rand_int__", "PX", strconv.Itoa(int(soakShortTTL.Milliseconds()))},
	{"SET", "key:__rand_int__", "__rand_int__", "EX", "7200"},
	{"SETEX", "ttl:__rand_int__", "3600", "v"},
	{"EXPIRE", "key:__rand_int__", "5400"},
	{"PEXPIRE", "counter:__rand_int__", "700"},
	{"GETEX", "key:__rand_int__", "PX", "1200"},
	{"PERSIST", "key:__rand_int__"},
	{"DEL", "key:__rand_int__"},
	{"UNLINK", "counter:__rand_int__"},
	{"APPEND", "key:__rand_int__", "abc"},
	{"SETRANGE", "key:__rand_int__", "4", "xyz"},
	{"INCRBYFLOAT", "float:__rand_int__", "1.5"},
	{"HSET", "myhash:__rand_int__", "f", "__rand_int__"},
	{"HINCRBY", "myhash:__rand_int__", "n", "3"},
	{"HDEL", "myhash", "element:__rand_int__"},
	{"ZINCRBY", "myzset", "2", "__rand_int__"},
	{"SREM", "myset", "__rand_int__"},
	{"LTRIM", "mylist", "0", "999"},
	{"LMOVE", "mylist", "mylist2", "LEFT", "RIGHT"},
	{"LTRIM", "mylist2", "0", "99"},
	{"XTRIM", "mystream", "MAXLEN", "500"},
	{"COPY", "key:__rand_int__", "copy:__rand_int__", "REPLACE"},
	{"PFADD", "hll", "__rand_int__"},
	{"SETBIT", "bits:__rand_int__", "7", "1"},
	{"EVAL", "redis.call('SET', KEYS[1], ARGV[1]) redis.call('INCR', 'evals') return 1", "1", "key:__rand_int__", "__rand_int__"},
}

// soakTests are redis-benchmark's own tests that write.
var soakTests = []string{"set", "incr", "lpush", "rpush", "lpop", "rpop", "sadd", "hset", "spop", "zadd", "zpopmin", "mset", "xadd"}

// benchLoad is the soak's load: two loops, each running one redis-benchmark
// after the other with a random command mix, db, key space, clients and
// pipeline depth.
type benchLoad struct {
	runs, failed, commands atomic.Int64
	cancel                 context.CancelFunc
	once                   sync.Once
	wg                     sync.WaitGroup
}

func startBenchLoad(t *testing.T, bench string, src *redistest.Server, seed uint64) *benchLoad {
	ctx, cancel := context.WithCancel(t.Context())
	l := &benchLoad{cancel: cancel}
	t.Cleanup(l.stop)
	for w := range 2 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(100+w)))
			for ctx.Err() == nil {
				n, c := 100+rng.IntN(1900), 1+rng.IntN(4)
				k := rng.IntN(40)
				if k == 0 { // rarely: a db emptied under load
					n, c = 1, 1
				}
				args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(src.Port), "-q",
					"-n", strconv.Itoa(n), "-c", strconv.Itoa(c), "-P", strconv.Itoa(1 + rng.IntN(8)),
					"-r", strconv.Itoa([]int{1000, 10000, 30000}[rng.IntN(3)]), "--dbnum", strconv.Itoa(rng.IntN(soakDBs))}
				switch {
				case k == 0:
					args = append(args, "FLUSHDB")
				case k < 16:
					var names []string
					for _, i := range rng.Perm(len(soakTests))[:1+rng.IntN(4)] {
						names = append(names, soakTests[i])
					}
					args = append(args, "-d", strconv.Itoa(3+rng.IntN(200)), "-t", strings.Join(names, ","))
					n *= len(names)
				default:
					args = append(args, soakCommands[rng.IntN(len(soakCommands))]...)
				}
				rctx, done := context.WithTimeout(ctx, time.Minute)
				out, err := exec.CommandContext(rctx, bench, args...).CombinedOutput()
				done()
				l.runs.Add(1)
				if err != nil && ctx.Err() == nil {
					if l.failed.Add(1) <= 3 {
						t.Logf("redis-benchmark %s: %v\n%s", strings.Join(args, " "), err, out)
					}
				} else if err == nil {
					l.commands.Add(int64(n))
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(100+rng.IntN(900)) * time.Millisecond):
				}
			}
		}()
	}
	return l
}

// stop ends the load (what was written stays).
func (l *benchLoad) stop() {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
}
