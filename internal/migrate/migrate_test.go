package migrate

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/restore"
)

func url(t *testing.T, s *redistest.Server) *redisurl.URL {
	t.Helper()
	u, err := redisurl.Parse(s.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func dbClient(t *testing.T, s *redistest.Server, db int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func digest(t *testing.T, s *redistest.Server) string {
	t.Helper()
	d, err := s.Client().Do(context.Background(), "DEBUG", "DIGEST").Text()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRun_Subset copies --match + --db from a populated server and checks
// every copied key by DEBUG DIGEST-VALUE and PEXPIRETIME (to the ms), and
// that nothing else was copied.
func TestRun_Subset(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	dst := redistest.Start(t)
	redistest.Populate(t, src, 2000)
	sc := dbClient(t, src, 1)
	// keys with a TTL in the subset, also short-lived ones
	for i := range 50 {
		if err := sc.Do(ctx, "SET", fmt.Sprintf("db1:str:ttl%d", i), i, "PX", 600000+i).Err(); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Run(ctx, url(t, src), url(t, dst), Options{
		Filter:    restore.Filter{Match: []string{"db1:s*"}, DBs: []int{1}},
		BatchKeys: 97, ScanCount: 50, Parallel: 3,
	})
	if err != nil {
		t.Fatalf("migrate: %v (result %+v)", err, res.Restore)
	}
	want, err := sc.Keys(ctx, "db1:s*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 500 {
		t.Fatalf("subset has only %d keys", len(want))
	}
	if res.Restore.KeysRestored != int64(len(want)) || res.Restore.KeysFailed != 0 {
		t.Fatalf("restored %d failed %d, want %d keys", res.Restore.KeysRestored, res.Restore.KeysFailed, len(want))
	}
	dc := dbClient(t, dst, 1)
	if n, _ := dc.DBSize(ctx).Result(); n != int64(len(want)) {
		t.Fatalf("target db 1 holds %d keys, want %d", n, len(want))
	}
	for _, db := range []int{0, 3} {
		if n, _ := dbClient(t, dst, db).DBSize(ctx).Result(); n != 0 {
			t.Fatalf("target db %d holds %d keys, want none (--db 1)", db, n)
		}
	}
	ttls := 0
	for _, k := range want {
		a, err := sc.Do(ctx, "DEBUG", "DIGEST-VALUE", k).Slice()
		if err != nil {
			t.Fatal(err)
		}
		b, err := dc.Do(ctx, "DEBUG", "DIGEST-VALUE", k).Slice()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("key %q: digest %s on the target, %s on the source", k, b, a)
		}
		ea, _ := sc.Do(ctx, "PEXPIRETIME", k).Int64()
		eb, _ := dc.Do(ctx, "PEXPIRETIME", k).Int64()
		if ea != eb {
			t.Fatalf("key %q: PEXPIRETIME %d on the target, %d on the source", k, eb, ea)
		}
		if ea > 0 {
			ttls++
		}
	}
	if ttls < 50 {
		t.Fatalf("only %d keys with a TTL were compared", ttls)
	}
	if lib, _ := dst.Client().Do(ctx, "FUNCTION", "LIST").Slice(); len(lib) != 1 {
		t.Fatalf("function libraries on the target: %v, want the source's one", lib)
	}
}

// TestRun_Everything copies a whole populated server: the DEBUG DIGEST of
// the target equals the source's. Then conflict modes on a second run.
func TestRun_Everything(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	dst := redistest.Start(t)
	redistest.Populate(t, src, 3000)
	res, err := Run(ctx, url(t, src), url(t, dst), Options{})
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if got, want := digest(t, dst), digest(t, src); got != want {
		t.Fatalf("target digest %s, source %s", got, want)
	}
	if res.KeysScanned != res.Restore.KeysRestored || res.Duplicates != 0 {
		t.Fatalf("scanned %d restored %d duplicates %d", res.KeysScanned, res.Restore.KeysRestored, res.Duplicates)
	}

	// fail: the target is not empty
	_, err = Run(ctx, url(t, src), url(t, dst), Options{})
	var ce *restore.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("second run with --conflict fail: %v, want a ConflictError", err)
	}
	// skip: the target's newer value wins
	if err := dbClient(t, dst, 0).Set(ctx, "db0:str:1", "newer", 0).Err(); err != nil {
		t.Fatal(err)
	}
	res, err = Run(ctx, url(t, src), url(t, dst), Options{Conflict: restore.ConflictSkip})
	if err != nil {
		t.Fatalf("skip: %v", err)
	}
	if res.Restore.KeysSkipped != res.KeysScanned || res.Restore.FunctionsSkipped != 1 {
		t.Fatalf("skip: skipped %d of %d, functions skipped %d", res.Restore.KeysSkipped, res.KeysScanned, res.Restore.FunctionsSkipped)
	}
	if v, _ := dbClient(t, dst, 0).Get(ctx, "db0:str:1").Result(); v != "newer" {
		t.Fatalf("skip overwrote the target's key: %q", v)
	}
	// replace: the source wins again
	if _, err := Run(ctx, url(t, src), url(t, dst), Options{Conflict: restore.ConflictReplace}); err != nil {
		t.Fatalf("replace: %v", err)
	}
	if got, want := digest(t, dst), digest(t, src); got != want {
		t.Fatalf("after replace: target digest %s, source %s", got, want)
	}
}

// TestRun_MethodSync copies a populated server through a full sync: same
// digest, and a subset filter applies on the client.
func TestRun_MethodSync(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	dst := redistest.Start(t)
	redistest.Populate(t, src, 2000)
	if _, err := Run(ctx, url(t, src), url(t, dst), Options{Method: MethodSync}); err != nil {
		t.Fatalf("migrate --method sync: %v", err)
	}
	if got, want := digest(t, dst), digest(t, src); got != want {
		t.Fatalf("target digest %s, source %s", got, want)
	}
	dst2 := redistest.Start(t)
	res, err := Run(ctx, url(t, src), url(t, dst2), Options{Method: MethodSync, Filter: restore.Filter{Match: []string{"db3:*"}, DBs: []int{3}}})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := dbClient(t, dst2, 3).DBSize(ctx).Result()
	if n == 0 || n != res.Restore.KeysRestored || dst2.Client().DBSize(ctx).Val() != 0 {
		t.Fatalf("subset: %d keys in db 3, %d restored", n, res.Restore.KeysRestored)
	}
}

func TestRun_SameServer(t *testing.T) {
	s := redistest.Start(t)
	if _, err := Run(t.Context(), url(t, s), url(t, s), Options{}); err == nil {
		t.Fatal("migrating a server onto itself was accepted")
	}
}

func TestHashSet(t *testing.T) {
	s := newHashSet()
	for i := range uint64(5000) {
		if !s.add(i * 0x9e3779b97f4a7c15) {
			t.Fatalf("%d reported as seen", i)
		}
	}
	for i := range uint64(5000) {
		if s.add(i * 0x9e3779b97f4a7c15) {
			t.Fatalf("%d reported as new twice", i)
		}
	}
}
