package clusterset

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"redback/internal/cluster"
	"redback/internal/digest"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/restore"
)

// farFuture is a TTL (unix ms) that does not expire while a test runs.
var farFuture = time.Now().Add(240 * time.Hour).UnixMilli()

// bigSource fills a standalone server with a 64 MiB list of 64-byte
// elements (with a TTL), a 40 MiB string of random bytes and 1,500 small
// keys spread over every slot range, RDB compression off, and returns it
// with its saved RDB's path.
func bigSource(t *testing.T, ctx context.Context) (*redistest.Server, string) {
	t.Helper()
	src := redistest.Start(t)
	c := src.Client()
	if err := c.ConfigSet(ctx, "rdbcompression", "no").Err(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const perCmd = 1000
	for i := 0; i < 1<<20; i += perCmd {
		args := make([]any, 0, perCmd)
		for j := i; j < i+perCmd && j < 1<<20; j++ {
			args = append(args, fmt.Sprintf("%d-%016x%016x%016x", j, rng.Uint64(), rng.Uint64(), rng.Uint64()))
		}
		if err := c.RPush(ctx, "big:list", args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PExpireAt(ctx, "big:list", time.UnixMilli(farFuture)).Err(); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for range 40 {
		for i := range chunk {
			chunk[i] = byte(rng.Uint32())
		}
		if err := c.Append(ctx, "big:string", string(chunk)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	p := c.Pipeline()
	for i := range 1500 {
		p.Set(ctx, "small:"+strconv.Itoa(i), i, 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	return src, filepath.Join(src.Dir, "dump.rdb")
}

// A restore into a live cluster holds no big value whole: each router
// spools a value too big to hold to a temporary file and hands it to the
// pipeline of the primary serving its slot, which sends it from there;
// a big value answered with ASK (its slot migrating) is written again
// from the spool to the importing node. The cluster's union digest and
// the list's TTL equal the source's, and the heap stays well under the
// 64 MiB list.
func TestRestoreSource_BigValuesStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB values")
	}
	ctx := t.Context()
	src, path := bigSource(t, ctx)
	want := src.Digest(ctx)
	tgt := redistest.StartCluster(t, 3, 0)
	u, err := redisurl.Parse(tgt.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const bound = 40 << 20
	run := func(t *testing.T) *RestoreResult {
		t.Helper()
		var res *RestoreResult
		var err error
		peak := redistest.HeapPeak(func() {
			res, err = RestoreSource(ctx, restore.FileSource(path), u, RestoreOptions{Wait: 100 * time.Millisecond})
		})
		if err != nil || res.KeysFailed != 0 || res.KeysRestored != 1502 {
			t.Fatalf("RestoreSource: %v (%+v), want 1502 keys restored", err, res)
		}
		t.Logf("HeapInuse peak %.1f MiB; %d keys, %d written again", float64(peak)/(1<<20), res.KeysRestored, res.Resent)
		if peak > bound {
			t.Errorf("HeapInuse peak %.1f MiB, want under %d MiB", float64(peak)/(1<<20), bound>>20)
		}
		return res
	}
	check := func(t *testing.T) {
		t.Helper()
		got, err := digest.Union(tgt.Digests(ctx)...)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("cluster union digest %s, source %s", got, want)
		}
		if ms, err := tgt.Client().PExpireTime(ctx, "big:list").Result(); err != nil || ms.Milliseconds() != farFuture {
			t.Errorf("big:list PEXPIRETIME %v (%v), want %d", ms, err, farFuture)
		}
	}
	flush := func(t *testing.T) {
		t.Helper()
		for _, p := range tgt.Primaries() {
			if err := p.Client().FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("Routed", func(t *testing.T) {
		run(t)
		check(t)
	})

	t.Run("AskedAgain", func(t *testing.T) {
		flush(t)
		// Hold big:list's slot migrating from its owner to another
		// primary: its RESTORE is answered with ASK, and it is written
		// again from the spool to the importing node.
		slot := cluster.Slot([]byte("big:list"))
		topo, err := cluster.Discover(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		ownerAddr := topo.Shards[topo.SlotMap()[slot]].Primary.Addr
		var owner, dst *redistest.Server
		for _, p := range tgt.Primaries() {
			switch {
			case p.Addr() == ownerAddr:
				owner = p
			case dst == nil:
				dst = p
			}
		}
		id := func(s *redistest.Server) string {
			v, err := s.Client().Do(ctx, "CLUSTER", "MYID").Text()
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		do := func(s *redistest.Server, args ...any) {
			t.Helper()
			if err := s.Client().Do(ctx, args...).Err(); err != nil {
				t.Fatalf("%v on %s: %v", args, s.Addr(), err)
			}
		}
		do(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", id(owner))
		do(owner, "CLUSTER", "SETSLOT", slot, "MIGRATING", id(dst))
		res := run(t)
		if res.Resent < 1 {
			t.Errorf("%d keys written again, want big:list after its ASK", res.Resent)
		}
		// Finish the move: the importing node first, then the others.
		do(dst, "CLUSTER", "SETSLOT", slot, "NODE", id(dst))
		for _, p := range tgt.Primaries() {
			if p != dst {
				do(p, "CLUSTER", "SETSLOT", slot, "NODE", id(dst))
			}
		}
		tgt.WaitOK()
		check(t)
	})

	t.Run("Converted", func(t *testing.T) {
		// Primaries that take no bulk string of 48 MiB: the list goes as
		// commands, decoded from the spool, into a temporary key of its
		// own slot, then renamed (the 40 MiB string still fits).
		flush(t)
		for _, p := range tgt.Primaries() {
			if err := p.Client().ConfigSet(ctx, "proto-max-bulk-len", "48mb").Err(); err != nil {
				t.Fatal(err)
			}
		}
		res := run(t)
		if res.KeysConverted != 1 {
			t.Errorf("%d keys converted, want big:list", res.KeysConverted)
		}
		check(t)
	})
}
