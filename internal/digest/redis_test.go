package digest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/rdb"
	"redback/internal/redistest"
)

// dbClient returns a client on db n of s, closed when the test ends.
func dbClient(t *testing.T, s *redistest.Server, n int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: n, DisableIdentity: true, ReadTimeout: 30 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

func must(t *testing.T, c *redis.Client, args ...any) any {
	t.Helper()
	v, err := c.Do(t.Context(), args...).Result()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

// loadEveryEncoding fills s with every encoding redis-server 7.0 writes.
func loadEveryEncoding(t *testing.T, s *redistest.Server) {
	c0, c1, c5 := dbClient(t, s, 0), dbClient(t, s, 1), dbClient(t, s, 5)
	must(t, c0, "DEBUG", "SET-ACTIVE-EXPIRE", "0")
	// strings: raw, int-encoded, LZF-compressible, binary, empty, int-encoded key names
	must(t, c0, "SET", "str:plain", "hello")
	must(t, c0, "SET", "str:int", "12345")
	must(t, c0, "SET", "str:neg", "-42")
	must(t, c0, "SET", "str:big", strings.Repeat("abcdefgh", 1000))
	must(t, c0, "SET", "bin:\x00\xff\r\n", "\x00\x01\x02\xfe\xff")
	must(t, c0, "SET", "str:empty", "")
	must(t, c0, "SET", "123", "int-named key")
	must(t, c0, "SET", "-7", "negative int-named key")
	// expires: far future, and one that already passed (active expire is off)
	must(t, c0, "SET", "ttl:future", "x")
	must(t, c0, "PEXPIRE", "ttl:future", 1e12)
	must(t, c0, "SET", "ttl:past", "y")
	must(t, c0, "PEXPIRE", "ttl:past", 1)
	// lists: one listpack node, several nodes, compressed nodes, plain nodes
	must(t, c0, "RPUSH", "list:small", "a", "b", "1", "-2", "99999999999")
	must(t, c0, "CONFIG", "SET", "list-max-listpack-size", "4")
	args := []any{"RPUSH", "list:nodes"}
	for i := 0; i < 30; i++ {
		args = append(args, fmt.Sprintf("e%d", i), i*1000)
	}
	must(t, c0, args...)
	must(t, c0, "CONFIG", "SET", "list-compress-depth", "1")
	args = []any{"RPUSH", "list:lzf"}
	for i := 0; i < 40; i++ {
		args = append(args, strings.Repeat(fmt.Sprintf("node%d-", i), 20))
	}
	must(t, c0, args...)
	must(t, c0, "CONFIG", "SET", "list-compress-depth", "0")
	if err := c0.Do(t.Context(), "DEBUG", "QUICKLIST-PACKED-THRESHOLD", "8192").Err(); err != nil {
		t.Logf("no plain quicklist nodes: DEBUG QUICKLIST-PACKED-THRESHOLD: %v", err)
	}
	must(t, c0, "RPUSH", "list:plain", "small", strings.Repeat("P", 10000), "tail", strings.Repeat("Q", 9000))
	// sets: intset and hashtable
	must(t, c0, "SADD", "set:intset", 1, 2, 3, -5, 1<<40)
	must(t, c0, "SADD", "set:ht", "a", "b", "\x00bin", "1")
	// hashes: listpack, then hashtable
	must(t, c0, "HSET", "hash:lp", "f1", "v1", "f2", "2", "\xff", "")
	must(t, c0, "CONFIG", "SET", "hash-max-listpack-entries", "0")
	must(t, c0, "HSET", "hash:ht", "f1", "v1", "f2", "2", "big", strings.Repeat("h", 100))
	must(t, c0, "CONFIG", "SET", "hash-max-listpack-entries", "128")
	// zsets: listpack, then skiplist; special scores
	scores := []any{"+inf", "pinf", "-inf", "ninf", "0.1", "tenth", "1e20", "big", "-0", "negzero",
		"0", "zero", "-1.5", "neg", "3", "int", "1e-5", "tiny", "123456789012345678", "huge", "2.5e-300", "denorm"}
	must(t, c0, append([]any{"ZADD", "zset:lp"}, scores...)...)
	must(t, c0, "CONFIG", "SET", "zset-max-listpack-entries", "0")
	must(t, c0, append([]any{"ZADD", "zset:sl"}, scores...)...)
	must(t, c0, "CONFIG", "SET", "zset-max-listpack-entries", "128")
	// streams: entries, XDEL, groups, PEL, consumers
	for i := 0; i < 250; i++ {
		must(t, c0, "XADD", "stream:s", fmt.Sprintf("%d-%d", 1000+i/3, i%3), "f", i, "name", "v"+strconv.Itoa(i))
	}
	must(t, c0, "XADD", "stream:s", "*", "other", "fields", "x", "y", "z", "w")
	must(t, c0, "XDEL", "stream:s", "1000-1", "1010-2", "1020-0")
	must(t, c0, "XGROUP", "CREATE", "stream:s", "g1", "0")
	must(t, c0, "XGROUP", "CREATE", "stream:s", "g2", "$")
	must(t, c0, "XREADGROUP", "GROUP", "g1", "alice", "COUNT", "5", "STREAMS", "stream:s", ">")
	must(t, c0, "XREADGROUP", "GROUP", "g1", "bob", "COUNT", "3", "STREAMS", "stream:s", ">")
	must(t, c0, "XACK", "stream:s", "g1", "1000-0")
	must(t, c0, "XADD", "stream:empty", "1-1", "a", "b")
	must(t, c0, "XDEL", "stream:empty", "1-1")
	// functions
	must(t, c0, "FUNCTION", "LOAD", "#!lua name=mylib\nredis.register_function('f1', function(keys, args) return 1 end)")
	// other dbs
	must(t, c1, "SET", "k", "db1")
	must(t, c1, "SADD", "s", "x", "y")
	must(t, c1, "PEXPIRE", "s", 1e12)
	must(t, c5, "SET", "k", "db5")
	must(t, c5, "RPUSH", "l", "1", "2", "3")
	// a duplicate dataset in another db must not cancel out: same keys, db 7
	c7 := dbClient(t, s, 7)
	must(t, c7, "SET", "str:plain", "hello")
	if err := s.Client().Do(t.Context(), "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	// "ttl:past" expires 1 ms after its PEXPIRE: make sure that moment passed.
	time.Sleep(5 * time.Millisecond)
}

type fileDigest struct {
	sum     string
	perKey  map[int]map[string]string
	types   map[rdb.Type]int
	dbKeys  map[int]int
	expired int
}

func digestFile(t *testing.T, path string, opts Options) fileDigest {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := rdb.NewReader(bufio.NewReader(f), rdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := New(opts)
	out := fileDigest{perKey: map[int]map[string]string{}, types: map[rdb.Type]int{}, dbKeys: map[int]int{}}
	now := time.Now().UnixMilli()
	for i := 0; i < 1_000_000; i++ {
		rec, err := r.Next()
		if err == io.EOF {
			out.sum = d.Sum()
			return out
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		if rec.Kind != rdb.RecordKey {
			continue
		}
		if err := d.Add(rec); err != nil {
			t.Fatalf("digest key %q: %v", rec.Key, err)
		}
		kd, err := d.KeyDigest(rec)
		if err != nil {
			t.Fatal(err)
		}
		if out.perKey[rec.DB] == nil {
			out.perKey[rec.DB] = map[string]string{}
		}
		out.perKey[rec.DB][string(rec.Key)] = kd
		out.types[rec.Type]++
		out.dbKeys[rec.DB]++
		if rec.Expire >= 0 && rec.Expire < now {
			out.expired++
		}
	}
	t.Fatal("too many records")
	return out
}

// keyspace parses INFO keyspace into db -> keys.
func keyspace(t *testing.T, c *redis.Client) map[int]int {
	info, err := c.Info(t.Context(), "keyspace").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]int{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "db") {
			continue
		}
		name, rest, _ := strings.Cut(line, ":")
		db, _ := strconv.Atoi(strings.TrimPrefix(name, "db"))
		keys, _, _ := strings.Cut(strings.TrimPrefix(rest, "keys="), ",")
		m[db], _ = strconv.Atoi(keys)
	}
	return m
}

func TestDigest_MatchesServer(t *testing.T) {
	s := redistest.Start(t)
	loadEveryEncoding(t, s)
	ctx := t.Context()
	want := s.Digest(ctx)
	got := digestFile(t, filepath.Join(s.Dir, "dump.rdb"), Options{})

	for _, typ := range []rdb.Type{rdb.TypeString, rdb.TypeListQuicklist2, rdb.TypeSet, rdb.TypeSetIntset,
		rdb.TypeHashListpack, rdb.TypeHash, rdb.TypeZSetListpack, rdb.TypeZSet2, rdb.TypeStreamListpacks2} {
		if got.types[typ] == 0 {
			t.Errorf("fixture has no key of type %d", typ)
		}
	}
	if got.expired != 1 {
		t.Errorf("already expired keys = %d, want 1", got.expired)
	}
	if ks := keyspace(t, s.Client()); fmt.Sprint(ks) != fmt.Sprint(got.dbKeys) {
		t.Errorf("keys per db = %v, INFO keyspace says %v", got.dbKeys, ks)
	}
	for db, keys := range got.perKey {
		c := dbClient(t, s, db)
		for key, kd := range keys {
			v, err := c.Do(ctx, "DEBUG", "DIGEST-VALUE", key).StringSlice()
			if err != nil || len(v) != 1 {
				t.Fatalf("DEBUG DIGEST-VALUE %q: %v %v", key, v, err)
			}
			if v[0] != kd {
				t.Errorf("db %d key %q: digest %s, server says %s", db, key, kd, v[0])
			}
		}
	}
	if got.sum != want {
		t.Errorf("digest of dump.rdb = %s, DEBUG DIGEST = %s", got.sum, want)
	}
	// Every Piecewise value streamed (as big ones are), inline and beside
	// the Parallel workers: the same digest.
	for _, workers := range []int{1, 3} {
		if sum, streamed := streamedDigest(t, filepath.Join(s.Dir, "dump.rdb"), Options{}, workers); sum != want || streamed == 0 {
			t.Errorf("digest of dump.rdb with every value streamed, %d workers = %s (%d keys streamed), DEBUG DIGEST = %s", workers, sum, streamed, want)
		}
	}
	// And every key's DEBUG DIGEST-VALUE with its value streamed
	// (StreamValue, KeyDigest of the Streamed record).
	if per := streamedKeyDigests(t, filepath.Join(s.Dir, "dump.rdb")); fmt.Sprint(per) != fmt.Sprint(got.perKey) {
		t.Errorf("value digests with every value streamed %v, held whole %v", per, got.perKey)
	}
}

// streamedKeyDigests is every key's value digest (KeyDigest) in the RDB at
// path, with every value (strings too) streamed from its first piece on.
func streamedKeyDigests(t *testing.T, path string) map[int]map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := New(Options{})
	r, err := rdb.NewReader(f, rdb.Options{StreamAbove: 1, StreamValues: d.StreamValue, StreamStrings: true})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]map[string]string{}
	streamed := 0
	err = r.ForEach(t.Context(), func(rec *rdb.Record) error {
		if rec.Kind != rdb.RecordKey {
			return nil
		}
		if rec.Streamed {
			streamed++
		}
		kd, err := d.KeyDigest(rec)
		if out[rec.DB] == nil {
			out[rec.DB] = map[string]string{}
		}
		out[rec.DB][string(rec.Key)] = kd
		return err
	})
	if err != nil || streamed == 0 {
		t.Fatalf("%d values streamed: %v", streamed, err)
	}
	return out
}

// streamedDigest is the digest of the RDB at path with every Piecewise
// value streamed from its first piece on, and every string of more than a
// byte (not int-encoded) streamed, on workers goroutines (1:
// inline). It returns how many keys were streamed.
func streamedDigest(t *testing.T, path string, opts Options, workers int) (string, int) {
	t.Helper()
	d := New(opts)
	streamed := 0
	scan := func(ctx context.Context, fn func(*rdb.Record) error) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r, err := rdb.NewReader(f, rdb.Options{SkipValueCheck: true, StreamAbove: 1, StreamValues: d.Stream, StreamStrings: true})
		if err != nil {
			return err
		}
		for {
			rec, err := r.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if rec.Kind != rdb.RecordKey {
				continue
			}
			if rec.Streamed {
				streamed++
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	var err error
	if workers > 1 {
		err = Parallel(t.Context(), d, opts, workers, scan)
	} else {
		err = scan(t.Context(), d.Add)
	}
	if err != nil {
		t.Fatal(err)
	}
	return d.Sum(), streamed
}

// Big strings streamed into the digest (rdb.Options.StreamStrings), one
// of random bytes (stored plain) and one the server LZF-compresses
// (rdbcompression yes), give the server's DEBUG DIGEST.
func TestDigest_BigStringsMatchServer(t *testing.T) {
	s := redistest.Start(t, "--rdbcompression", "yes")
	c := dbClient(t, s, 0)
	rng := rand.New(rand.NewPCG(17, 4))
	random := make([]byte, 3<<20+11)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var text strings.Builder
	for i := 0; text.Len() < 3<<20; i++ {
		fmt.Fprintf(&text, "line %d of a compressible string, %x\n", i, rng.IntN(64))
	}
	must(t, c, "SET", "big:random", random)
	must(t, c, "SET", "big:text", text.String())
	must(t, c, "SET", "big:ttl", text.String()[:2<<20])
	must(t, c, "PEXPIRE", "big:ttl", 1e12)
	must(t, c, "SET", "small", "x")
	must(t, c, "SET", "int", "12345")
	must(t, c, "SAVE")
	path := filepath.Join(s.Dir, "dump.rdb")
	if st, err := os.Stat(path); err != nil || st.Size() > 6<<20 {
		t.Fatalf("dump.rdb: %v, want the text strings LZF-compressed", err)
	}
	want := s.Digest(t.Context())
	for _, workers := range []int{1, 3} {
		if sum, streamed := streamedDigest(t, path, Options{}, workers); sum != want || streamed != 3 {
			t.Errorf("digest with the strings streamed, %d workers = %s (%d keys streamed, want 3), DEBUG DIGEST = %s", workers, sum, streamed, want)
		}
	}
	if got := digestFile(t, path, Options{}); got.sum != want {
		t.Errorf("digest with the strings whole = %s, DEBUG DIGEST = %s", got.sum, want)
	}
}

func TestDigest_EmptyServer(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	if err := s.Client().Do(ctx, "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	got := digestFile(t, filepath.Join(s.Dir, "dump.rdb"), Options{})
	if want := s.Digest(ctx); got.sum != want {
		t.Fatalf("empty: %s, server %s", got.sum, want)
	}
}
