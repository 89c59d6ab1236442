package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/pack"
	"redback/internal/rdb"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/respconn"
	"redback/internal/storage/mem"
)

const farFuture = int64(4102444800000) // 2100-01-01

// populate writes keys of every type and encoding Redis 7.0 saves into dbs
// 0, 1 and 5, a function library and TTLs far in the future.
func populate(t *testing.T, ctx context.Context, s *redistest.Server) {
	t.Helper()
	c := s.Client()
	must := func(cn *redis.Client, args ...any) {
		t.Helper()
		if err := cn.Do(ctx, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("%v: %v", args, err)
		}
	}
	must(c, "CONFIG", "SET", "list-max-listpack-size", "4")
	must(c, "CONFIG", "SET", "hash-max-listpack-entries", "16")
	must(c, "CONFIG", "SET", "zset-max-listpack-entries", "16")
	must(c, "CONFIG", "SET", "set-max-intset-entries", "16")
	must(c, "DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1000")
	must(c, "FUNCTION", "LOAD", "#!lua name=restorelib\nredis.register_function('rfunc', function(keys, args) return 1 end)")
	for _, db := range []int{0, 1, 5} {
		cn := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db, DisableIdentity: true})
		p := fmt.Sprintf("db%d:", db)
		must(cn, "SET", p+"int", "12345")
		must(cn, "SET", p+"str", "hello")
		must(cn, "SET", p+"lzf", strings.Repeat("abcdefgh", 100))
		must(cn, "SET", "\x00\xff bin\r\nkey"+p, "\x00\x01\x02")
		must(cn, "SET", "", "empty key "+p)
		must(cn, "RPUSH", p+"list-small", "a", "b", "1", "-1", "40000")
		for i := range 30 {
			must(cn, "RPUSH", p+"list-multi", "e"+strconv.Itoa(i), i)
		}
		must(cn, "RPUSH", p+"list-plain", "a", strings.Repeat("P", 5000), "b")
		must(cn, "SADD", p+"set-int", 1, 2, 3, -40000, 1<<40)
		must(cn, "SADD", p+"set-str", "a", "b", "c")
		must(cn, "HSET", p+"hash-lp", "f1", "v1", "f2", 22)
		must(cn, "ZADD", p+"zset-lp", 1.5, "a", 2, "b", -3.25, "c", "inf", "d")
		for i := range 40 {
			must(cn, "SADD", p+"set-ht", "m"+strconv.Itoa(i))
			must(cn, "SADD", p+"set-int-ht", i*7)
			must(cn, "HSET", p+"hash-ht", "f"+strconv.Itoa(i), strings.Repeat("v", i))
			must(cn, "ZADD", p+"zset-sl", float64(i)*0.1-1, "m"+strconv.Itoa(i))
		}
		for i := range 20 {
			must(cn, "XADD", p+"stream", fmt.Sprintf("%d-%d", 1000+i, i), "field", i, "other", "x")
		}
		must(cn, "XDEL", p+"stream", "1003-3")
		must(cn, "XGROUP", "CREATE", p+"stream", "g1", "0")
		must(cn, "XGROUP", "CREATE", p+"stream", "g2", "1010-10")
		must(cn, "XREADGROUP", "GROUP", "g1", "alice", "COUNT", "3", "STREAMS", p+"stream", ">")
		must(cn, "XREADGROUP", "GROUP", "g1", "bob", "COUNT", "2", "STREAMS", p+"stream", ">")
		must(cn, "XACK", p+"stream", "g1", "1001-1")
		must(cn, "XGROUP", "CREATECONSUMER", p+"stream", "g2", "carol")
		must(cn, "XADD", p+"stream-empty", "MAXLEN", "0", "5-5", "f", "v")
		for _, k := range []string{"int", "list-multi", "set-ht", "hash-lp", "zset-sl", "stream"} {
			must(cn, "PEXPIREAT", p+k, farFuture+int64(db)*1000+int64(len(k)))
		}
		cn.Close()
	}
}

// saveRDB SAVEs s and returns the dump.rdb path.
func saveRDB(t *testing.T, ctx context.Context, s *redistest.Server) string {
	t.Helper()
	if err := s.Client().Do(ctx, "SAVE").Err(); err != nil {
		t.Fatalf("SAVE: %v", err)
	}
	return filepath.Join(s.Dir, "dump.rdb")
}

func targetURL(t *testing.T, s *redistest.Server) *redisurl.URL {
	t.Helper()
	u, err := redisurl.Parse(s.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// ttls returns db/key -> PEXPIRETIME of every key with a TTL.
func ttls(t *testing.T, ctx context.Context, s *redistest.Server) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for db := range 16 {
		cn := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db, DisableIdentity: true})
		keys, err := cn.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			n, err := cn.Do(ctx, "PEXPIRETIME", k).Int64()
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				out[fmt.Sprintf("%d/%q", db, k)] = n
			}
		}
		cn.Close()
	}
	return out
}

func compareServers(t *testing.T, ctx context.Context, want, got *redistest.Server) {
	t.Helper()
	if w, g := want.Digest(ctx), got.Digest(ctx); w != g {
		t.Errorf("DEBUG DIGEST: target %s, source %s", g, w)
	}
	wt, gt := ttls(t, ctx, want), ttls(t, ctx, got)
	if len(wt) == 0 {
		t.Error("source has no TTL keys")
	}
	for k, v := range wt {
		if gt[k] != v {
			t.Errorf("PEXPIRETIME %s: target %d, source %d", k, gt[k], v)
		}
	}
	if len(gt) != len(wt) {
		t.Errorf("target has %d TTL keys, source %d", len(gt), len(wt))
	}
}

func TestToRedis_AllTypes(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t, "--maxmemory-policy", "allkeys-lru")
	populate(t, ctx, src)
	path := saveRDB(t, ctx, src)
	dst := redistest.Start(t)
	var progressKeys atomic.Int64
	res, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Parallel: 3, BatchKeys: 7, Progress: func(_, k int64) { progressKeys.Add(k) }})
	if err != nil {
		t.Fatalf("ToRedis: %v (%+v)", err, res)
	}
	t.Logf("result: %+v", res)
	compareServers(t, ctx, src, dst)
	if res.KeysFailed != 0 || res.KeysConverted != 0 || res.FunctionsLoaded != 1 {
		t.Errorf("failed %d converted %d functions %d", res.KeysFailed, res.KeysConverted, res.FunctionsLoaded)
	}
	if n, _ := src.Client().DBSize(ctx).Result(); res.KeysRestored < n {
		t.Errorf("restored %d keys, db0 alone has %d", res.KeysRestored, n)
	}
	if progressKeys.Load() != res.KeysRestored {
		t.Errorf("progress counted %d keys, restored %d", progressKeys.Load(), res.KeysRestored)
	}
	libs, err := dst.Client().Do(ctx, "FUNCTION", "LIST").Slice()
	if err != nil || !strings.Contains(fmt.Sprint(libs), "restorelib") {
		t.Errorf("FUNCTION LIST = %v, %v; want restorelib", libs, err)
	}
	// consumer groups come over with RESTORE
	g, err := dst.Client().XInfoGroups(ctx, "db0:stream").Result()
	if err != nil || len(g) != 2 || g[0].Pending != 4 {
		t.Errorf("XINFO GROUPS = %+v, %v", g, err)
	}

	t.Run("ToDir", func(t *testing.T) {
		dir := t.TempDir()
		res, err := ToDir(ctx, FileSource(path), dir, Options{})
		if err != nil {
			t.Fatalf("ToDir: %v", err)
		}
		if _, err := ToDir(ctx, FileSource(path), dir, Options{}); !errors.Is(err, ErrExists) {
			t.Errorf("second ToDir: %v, want ErrExists", err)
		}
		if _, err := ToDir(ctx, FileSource(path), dir, Options{Force: true}); err != nil {
			t.Errorf("ToDir --force: %v", err)
		}
		loaded := redistest.StartInDir(t, dir)
		compareServers(t, ctx, src, loaded)
		if res.KeysRestored == 0 || res.FunctionsLoaded != 1 {
			t.Errorf("result %+v", res)
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.Contains(e.Name(), ".redback-") {
				t.Errorf("temporary file left: %s", e.Name())
			}
		}
	})
}

func TestToRedis_Conflicts(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	c := src.Client()
	for i := range 50 {
		c.Set(ctx, "k"+strconv.Itoa(i), "source"+strconv.Itoa(i), 0)
	}
	c.PExpireAt(ctx, "k1", time.UnixMilli(farFuture))
	path := saveRDB(t, ctx, src)
	dst := redistest.Start(t)
	dc := dst.Client()
	dc.Set(ctx, "k1", "target", 0)
	dc.Set(ctx, "k2", "target", 0)
	dc.Set(ctx, "other", "target", 0)
	before := dst.Digest(ctx)
	u := targetURL(t, dst)

	_, err := ToRedis(ctx, FileSource(path), u, Options{})
	var ce *ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "--conflict replace") || !strings.Contains(err.Error(), "--conflict skip") {
		t.Fatalf("fail mode: %v, want a ConflictError naming --conflict replace and skip", err)
	}
	if dst.Digest(ctx) != before {
		t.Fatal("fail mode wrote to the target")
	}
	// a source whose dbs are unknown is scanned; db 3 of the target is not touched
	dc.Do(ctx, "SWAPDB", 0, 3)
	res, err := ToRedis(ctx, FileSource(path), u, Options{})
	if err != nil || res.KeysRestored != 50 {
		t.Fatalf("into db 0 while db 3 is busy: %v %+v", err, res)
	}
	dc.Do(ctx, "FLUSHDB")
	dc.Do(ctx, "SWAPDB", 0, 3)

	res, err = ToRedis(ctx, FileSource(path), u, Options{Conflict: ConflictSkip})
	if err != nil || res.KeysSkipped != 2 || res.KeysRestored != 48 {
		t.Fatalf("skip: %v %+v", err, res)
	}
	if v := dc.Get(ctx, "k1").Val(); v != "target" {
		t.Errorf("skip: k1 = %q, want the target's value", v)
	}
	res, err = ToRedis(ctx, FileSource(path), u, Options{Conflict: ConflictReplace})
	if err != nil || res.KeysRestored != 50 {
		t.Fatalf("replace: %v %+v", err, res)
	}
	d1 := dst.Digest(ctx)
	if _, err = ToRedis(ctx, FileSource(path), u, Options{Conflict: ConflictReplace}); err != nil {
		t.Fatal(err)
	}
	if d2 := dst.Digest(ctx); d1 != d2 {
		t.Errorf("replace twice: digest %s then %s", d1, d2)
	}
	// the target now equals the source plus "other"
	dc.Del(ctx, "other")
	compareServers(t, ctx, src, dst)
}

func TestToRedis_FiltersAndMapDB(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	populate(t, ctx, src)
	path := saveRDB(t, ctx, src)
	dst := redistest.Start(t)
	opts := Options{Filter: Filter{Match: []string{"db*:s*", "db?:list-[ms]*"}, DBs: []int{0, 5}, MapDB: map[int]int{5: 2}}}
	res, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), opts)
	if err != nil {
		t.Fatalf("ToRedis: %v", err)
	}
	file := t.TempDir()
	fres, err := ToFile(ctx, FileSource(path), filepath.Join(file, "dump.rdb"), opts)
	if err != nil {
		t.Fatalf("ToFile: %v", err)
	}
	if fres.KeysRestored != res.KeysRestored || fres.KeysFiltered != res.KeysFiltered {
		t.Errorf("file %+v, server %+v", fres, res)
	}
	// The same restriction on a copy of the source.
	ref := redistest.StartInDir(t, src.Dir)
	for db := range 16 {
		cn := redis.NewClient(&redis.Options{Addr: ref.Addr(), DB: db, DisableIdentity: true})
		keys, _ := cn.Keys(ctx, "*").Result()
		for _, k := range keys {
			if (db != 0 && db != 5) || !(Match([]byte("db*:s*"), []byte(k)) || Match([]byte("db?:list-[ms]*"), []byte(k))) {
				cn.Del(ctx, k)
			}
		}
		cn.Close()
	}
	ref.Client().Do(ctx, "SWAPDB", 5, 2)
	compareServers(t, ctx, ref, dst)
	loaded := redistest.StartInDir(t, file)
	compareServers(t, ctx, ref, loaded)
	if res.KeysFiltered == 0 || res.KeysRestored == 0 {
		t.Errorf("result %+v", res)
	}
	_, err = ToFile(ctx, FileSource(path), filepath.Join(t.TempDir(), "x.rdb"), Options{Filter: Filter{MapDB: map[int]int{0: 1}}})
	if err == nil || !strings.Contains(err.Error(), "both to db 1") {
		t.Errorf("merging dbs into a file: %v", err)
	}
}

// TestToRedis_Fallback restores an RDB 11 file holding a type-20 set
// (SET_LISTPACK, unknown to Redis 7.0) and a newer-footer hash into 7.0:
// the set is converted to SADD, the hash restored with its footer lowered.
func TestToRedis_Fallback(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "v11.rdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := rdb.NewWriter(f, 11)
	if err != nil {
		t.Fatal(err)
	}
	members := [][]byte{[]byte("a"), []byte("b"), []byte("12"), []byte("-7")}
	var big [][]byte
	for i := range 700 {
		big = append(big, []byte("m"+strconv.Itoa(i)))
	}
	hash := [][]byte{[]byte("f1"), []byte("v1"), []byte("f2"), []byte("2")}
	var zm [][]byte
	var zs []float64
	for i := range 5 {
		zm = append(zm, []byte("z"+strconv.Itoa(i)))
		zs = append(zs, float64(i)/3)
	}
	steps := []error{
		w.SelectDB(0),
		w.WriteKey([]byte("setlp"), rdb.TypeSetListpack, rdb.EncodeBlob(rdb.BuildListpack(members)), farFuture, -1, -1),
		w.WriteKey([]byte("setlp-big"), rdb.TypeSetListpack, rdb.EncodeBlob(rdb.BuildListpack(big)), -1, -1, -1),
		w.WriteKey([]byte("hashlp"), rdb.TypeHashListpack, rdb.EncodeBlob(rdb.BuildListpack(hash)), -1, -1, -1),
		w.WriteKey([]byte("zset"), rdb.TypeZSet2, rdb.EncodeZSet2(zm, zs), -1, -1, -1),
		w.Close(),
	}
	for _, err := range steps {
		if err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	dst := redistest.Start(t)
	res, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{BatchBytes: 512})
	if err != nil {
		t.Fatalf("ToRedis: %v %+v", err, res)
	}
	if res.KeysConverted != 2 || res.KeysRewritten != 2 || res.KeysRestored != 4 {
		t.Errorf("result %+v, want 2 converted, 2 footer rewritten", res)
	}
	ref := redistest.Start(t)
	rc := ref.Client()
	rc.SAdd(ctx, "setlp", "a", "b", "12", "-7")
	rc.PExpireAt(ctx, "setlp", time.UnixMilli(farFuture))
	for _, m := range big {
		rc.SAdd(ctx, "setlp-big", m)
	}
	rc.HSet(ctx, "hashlp", "f1", "v1", "f2", "2")
	for i := range zm {
		rc.ZAdd(ctx, "zset", redis.Z{Score: zs[i], Member: zm[i]})
	}
	compareServers(t, ctx, ref, dst)
	if n := dst.Client().Keys(ctx, "redback:*").Val(); len(n) != 0 {
		t.Errorf("temporary keys left: %v", n)
	}
	// Again: converted keys are skipped (RENAMENX) or replaced (RENAME) too.
	dst.Client().SAdd(ctx, "setlp", "extra")
	res, err = ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Conflict: ConflictSkip})
	if err != nil || res.KeysSkipped != 4 || res.KeysRestored != 0 {
		t.Errorf("skip: %v %+v", err, res)
	}
	if n := dst.Client().SCard(ctx, "setlp").Val(); n != 5 {
		t.Errorf("skip changed setlp: %d members", n)
	}
	res, err = ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Conflict: ConflictReplace})
	if err != nil || res.KeysRestored != 4 || res.KeysConverted != 2 {
		t.Errorf("replace: %v %+v", err, res)
	}
	compareServers(t, ctx, ref, dst)
	if n := dst.Client().Keys(ctx, "redback:*").Val(); len(n) != 0 {
		t.Errorf("temporary keys left: %v", n)
	}
}

// TestToRedis_StreamConversion converts a stream with groups and a PEL by
// forcing the fallback (proto-max-bulk-len below the payload size).
func TestToRedis_StreamConversion(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	c := src.Client()
	c.ConfigSet(ctx, "rdbcompression", "no")
	for i := range 300 {
		c.XAdd(ctx, &redis.XAddArgs{Stream: "s", ID: fmt.Sprintf("%d-1", 100+i), Values: []any{"f", strings.Repeat("x", 4000), "n", i}})
	}
	c.XDel(ctx, "s", "105-1")
	c.XGroupCreate(ctx, "s", "g", "0")
	c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "alice", Streams: []string{"s", ">"}, Count: 5})
	c.XAdd(ctx, &redis.XAddArgs{Stream: "empty", ID: "7-7", MaxLen: 0, Values: []any{"f", "v"}})
	c.XTrimMaxLen(ctx, "empty", 0)
	c.Do(ctx, "SET", "bigstr", strings.Repeat("s", 1<<20-8))  // payload above 1 MiB, value below
	c.Do(ctx, "SET", "hugestr", strings.Repeat("h", 1<<20+5)) // cannot exist on the target
	c.PExpireAt(ctx, "s", time.UnixMilli(farFuture))
	path := saveRDB(t, ctx, src)
	dst := redistest.Start(t)
	dst.Client().ConfigSet(ctx, "proto-max-bulk-len", "1mb")
	res, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{})
	if err != nil {
		t.Fatalf("ToRedis: %v %+v", err, res)
	}
	if res.KeysConverted != 2 || res.KeysFailed != 1 || !strings.Contains(res.Failures[0].Reason, "proto-max-bulk-len") {
		t.Errorf("converted %d keys, want 2 (stream, big string) and hugestr failed: %+v", res.KeysConverted, res)
	}
	c.Del(ctx, "hugestr")
	compareServers(t, ctx, src, dst)
	want, _ := c.XInfoStreamFull(ctx, "s", 0).Result()
	got, err := dst.Client().XInfoStreamFull(ctx, "s", 0).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got.LastGeneratedID != want.LastGeneratedID || got.EntriesAdded != want.EntriesAdded || got.MaxDeletedEntryID != want.MaxDeletedEntryID {
		t.Errorf("stream meta: got %s/%d/%s, want %s/%d/%s", got.LastGeneratedID, got.EntriesAdded, got.MaxDeletedEntryID, want.LastGeneratedID, want.EntriesAdded, want.MaxDeletedEntryID)
	}
	if len(got.Groups) != 1 || len(got.Groups[0].Pending) != 5 || got.Groups[0].EntriesRead != want.Groups[0].EntriesRead {
		t.Errorf("groups: got %+v, want %+v", got.Groups, want.Groups)
	} else {
		for i, p := range want.Groups[0].Pending {
			g := got.Groups[0].Pending[i]
			if g.ID != p.ID || g.Consumer != p.Consumer || g.DeliveryCount != p.DeliveryCount || !g.DeliveryTime.Equal(p.DeliveryTime) {
				t.Errorf("PEL %d: got %+v, want %+v", i, g, p)
			}
		}
	}
	if n, _ := dst.Client().Exists(ctx, "empty").Result(); n != 1 {
		t.Error("empty stream not restored")
	}
}

func TestToRedis_BigValue(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MB value")
	}
	ctx := t.Context()
	src := redistest.Start(t)
	c := src.Client()
	chunk := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, incompressible enough with rdbcompression off
	c.ConfigSet(ctx, "rdbcompression", "no")
	for i := range 64 {
		if err := c.Append(ctx, "big", chunk).Err(); err != nil {
			t.Fatal(err)
		}
		_ = i
	}
	for i := range 2000 {
		c.Set(ctx, "small"+strconv.Itoa(i), i, 0)
	}
	path := saveRDB(t, ctx, src)
	dst := redistest.Start(t)
	var res *Result
	var err error
	peak := redistest.HeapPeak(func() { res, err = ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{}) })
	if err != nil {
		t.Fatalf("ToRedis: %v", err)
	}
	t.Logf("64 MiB value + 2000 keys: HeapInuse peak %.1f MiB, %+v", float64(peak)/(1<<20), res)
	if p := peak; p > 400<<20 {
		t.Errorf("HeapInuse peak %d MiB: not bounded", p>>20)
	}
	compareServers2(t, ctx, src, dst)
}

// compareServers2 compares digests only (for datasets without TTLs).
func compareServers2(t *testing.T, ctx context.Context, want, got *redistest.Server) {
	t.Helper()
	if w, g := want.Digest(ctx), got.Digest(ctx); w != g {
		t.Errorf("DEBUG DIGEST: target %s, source %s", g, w)
	}
}

func TestToRedis_DamagedSource(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	c := src.Client()
	for i := range 3000 {
		c.Set(ctx, fmt.Sprintf("key:%05d", i), strings.Repeat("v", 100), 0)
	}
	path := saveRDB(t, ctx, src)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.rdb")
	data[len(data)*3/4] ^= 0x40 // a bit flip inside a value or key
	os.WriteFile(bad, data, 0o600)
	dst := redistest.Start(t)
	res, err := ToRedis(ctx, FileSource(bad), targetURL(t, dst), Options{})
	var se *DamagedSourceError
	if !errors.As(err, &se) || !pack.VerificationFailed(err) {
		t.Fatalf("err = %v, want a DamagedSourceError", err)
	}
	t.Logf("damaged: %v (result %+v)", err, res)
	if n, _ := dst.Client().DBSize(ctx).Result(); n != se.Written {
		t.Errorf("target holds %d keys, DamagedSourceError says %d written", n, se.Written)
	}
	dir := t.TempDir()
	_, err = ToDir(ctx, FileSource(bad), dir, Options{})
	if !errors.As(err, &se) {
		t.Errorf("ToDir: %v, want a DamagedSourceError", err)
	}
	// The values are checked on Fanout workers: the error must be the one a
	// plain check reports, and nothing may be left in the dir.
	if want := checkErr(t, bad); !strings.Contains(err.Error(), want.Error()) {
		t.Errorf("ToDir: %v, want the check's error %v", err, want)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("ToDir left %d entries in %s after failing", len(ents), dir)
	}
}

// checkErr reads the file at path with a full check and returns its error.
func checkErr(t *testing.T, path string) error {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := rdb.NewReader(f, rdb.Options{})
	if err != nil {
		return err
	}
	for range 1 << 20 {
		if _, err := r.Next(); err != nil {
			if err == io.EOF {
				t.Fatalf("%s: no damage found", path)
			}
			return err
		}
	}
	t.Fatalf("%s: too many records", path)
	return nil
}

func TestToRedis_TargetErrors(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	src.Client().Set(ctx, "a", "b", 0)
	path := saveRDB(t, ctx, src)

	primary := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port))
	_, err := ToRedis(ctx, FileSource(path), targetURL(t, replica), Options{Conflict: ConflictReplace})
	if err == nil || !strings.Contains(err.Error(), "replica") {
		t.Errorf("replica target: %v", err)
	}

	cluster := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"))
	_, err = ToRedis(ctx, FileSource(path), targetURL(t, cluster), Options{})
	if !errors.Is(err, ErrCluster) || !strings.Contains(err.Error(), "not supported yet") {
		t.Errorf("cluster target: %v", err)
	}

	// A port nobody listens on.
	u, _ := redisurl.Parse("redis://127.0.0.1:"+strconv.Itoa(redistest.FreePort(t)), redisurl.Options{})
	_, err = ToRedis(ctx, FileSource(path), u, Options{Timeout: 2 * time.Second})
	var te *respconn.ServerError
	if !errors.As(err, &te) || te.Role != respconn.RoleTarget || !strings.Contains(err.Error(), "target ") || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("unreachable: %v", err)
	}

	authed := redistest.Start(t)
	authed.Client().ConfigSet(ctx, "requirepass", "s3cret-pw")
	u = targetURL(t, authed)
	_, err = ToRedis(ctx, FileSource(path), u, Options{})
	if err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("no password: %v", err)
	}
	u, _ = redisurl.Parse("redis://:wrong-pw@"+authed.Addr(), redisurl.Options{})
	_, err = ToRedis(ctx, FileSource(path), u, Options{})
	if err == nil || strings.Contains(err.Error(), "wrong-pw") || !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("wrong password: %v", err)
	}
	u, _ = redisurl.Parse("redis://:s3cret-pw@"+authed.Addr(), redisurl.Options{})
	if res, err := ToRedis(ctx, FileSource(path), u, Options{}); err != nil || res.KeysRestored != 1 {
		t.Errorf("right password: %v %+v", err, res)
	}

	oom := redistest.Start(t, "--maxmemory", "1mb")
	big := redistest.Start(t)
	bc := big.Client()
	for i := range 200 {
		bc.Set(ctx, "k"+strconv.Itoa(i), strings.Repeat("x", 20000), 0)
	}
	bigPath := saveRDB(t, ctx, big)
	res, err := ToRedis(ctx, FileSource(bigPath), targetURL(t, oom), Options{})
	if err == nil || !strings.Contains(err.Error(), "out of memory") {
		t.Errorf("OOM: %v %+v", err, res)
	}
	// The key the target refused is counted: never "0 failed" while failing.
	if res.KeysFailed == 0 || len(res.Failures) == 0 || !strings.Contains(res.Failures[0].Reason, "OOM") {
		t.Errorf("OOM: %d failed %+v, want the refused key counted", res.KeysFailed, res.Failures)
	}
}

// A stored snapshot damaged at rest: with the precheck (the default), a
// restore into a live server writes nothing; without it, the error says
// how many keys and which ones were written.
func TestToRedis_DamagedSnapshotWritesNothing(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	c := src.Client()
	for i := range 3000 { // values that do not compress: the object has many zstd blocks
		c.Set(ctx, fmt.Sprintf("key:%05d", i), fmt.Sprintf("%x", sha256.Sum256([]byte(strconv.Itoa(i)))), 0)
	}
	raw, err := os.ReadFile(saveRDB(t, ctx, src))
	if err != nil {
		t.Fatal(err)
	}
	snap, data := sealed(t, raw)
	data[len(data)-40] ^= 0x01 // near the end: found by the sha256 only after most keys
	b := mem.New()
	if _, err := b.Put(ctx, snap.Object.Key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	for _, pre := range []bool{true, false} {
		dst := redistest.Start(t)
		_, err := ToRedis(ctx, SnapshotSource(b, snap, nil), targetURL(t, dst), Options{NoPrecheck: !pre})
		var se *DamagedSourceError
		if !errors.As(err, &se) || !pack.VerificationFailed(err) || !strings.Contains(err.Error(), snap.Object.Key) {
			t.Fatalf("precheck %v: %v, want a DamagedSourceError naming the object", pre, err)
		}
		n, _ := dst.Client().DBSize(ctx).Result()
		switch {
		case pre && (n != 0 || se.Written != 0 || !strings.Contains(err.Error(), "nothing was written")):
			t.Errorf("precheck: target holds %d keys, error %v", n, err)
		case !pre && (n == 0 || n != se.Written || !strings.Contains(err.Error(), `db 0 key "key:`)):
			t.Errorf("no precheck: target holds %d keys, error %v", n, err)
		}
		t.Logf("precheck %v: %v", pre, err)
	}
}

func TestToFile_Keys(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	c := src.Client()
	c.Set(ctx, "gone", "x", 0)
	c.PExpireAt(ctx, "gone", time.Now().Add(300*time.Millisecond))
	c.Set(ctx, "stays", "y", 0)
	path := saveRDB(t, ctx, src)
	later := func() time.Time { return time.Now().Add(time.Hour) }
	res, err := ToFile(ctx, FileSource(path), filepath.Join(t.TempDir(), "out.rdb"), Options{Now: later})
	if err != nil || res.KeysExpired != 1 || res.KeysRestored != 1 {
		t.Errorf("copy: %v %+v", err, res)
	}
	// The copied file still holds the expired key: the result says so.
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "the file holds all 2 keys, 1 of them already expired") {
		t.Errorf("copy notes %q", res.Notes)
	}
	dst := redistest.Start(t)
	res, err = ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Now: later})
	if err != nil || res.KeysExpired != 1 || res.KeysRestored != 1 {
		t.Errorf("redis: %v %+v", err, res)
	}
	keys := dst.Client().Keys(ctx, "*").Val()
	sort.Strings(keys)
	if strings.Join(keys, ",") != "stays" {
		t.Errorf("keys %v", keys)
	}
}
