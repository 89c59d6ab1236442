package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Populate fills the server with keys of every type and of every encoding
// Redis 7.0 writes, in dbs 0, 1 and 3: int, embstr, raw and LZF-friendly
// strings; listpack and quicklist lists (with a plain node over 8 KB);
// intset, listpack-free hashtable sets; listpack and skiplist zsets (with
// inf, negative and fractional scores); listpack and hashtable hashes;
// streams with consumer groups, a PEL and deleted entries; binary keys;
// TTLs far in the future; and a function library. It returns the number of
// keys written. n scales the bulk part (n strings and collections of n/10).
func Populate(t testing.TB, s *Server, n int) int {
	t.Helper()
	ctx := context.Background()
	c := s.Client()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("populate: %v", err)
		}
	}
	do := func(args ...any) {
		t.Helper()
		must(c.Do(ctx, args...).Err())
	}
	keys := 0
	do("FUNCTION", "LOAD", "REPLACE", "#!lua name=redbacklib\nredis.register_function('rb_echo', function(keys, args) return args[1] end)")
	far := time.Now().Add(240 * time.Hour).UnixMilli()
	for _, db := range []int{0, 1, 3} {
		dc := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db, DisableIdentity: true, TLSConfig: s.tls})
		p := dc.Pipeline()
		pre := fmt.Sprintf("db%d:", db)
		for i := 0; i < n; i++ {
			switch i % 4 {
			case 0:
				p.Do(ctx, "SET", fmt.Sprintf("%sint:%d", pre, i), i*7-3)
			case 1:
				p.Do(ctx, "SET", fmt.Sprintf("%sstr:%d", pre, i), fmt.Sprintf("value-%d", i))
			case 2:
				p.Do(ctx, "SET", fmt.Sprintf("%slzf:%d", pre, i), strings.Repeat("abcabcabc", 10+i%5))
			case 3:
				p.Do(ctx, "SET", fmt.Sprintf("%sttl:%d", pre, i), "expiring", "PXAT", far+int64(i))
			}
			keys++
		}
		m := max(n/10, 4)
		for i := 0; i < m; i++ {
			p.Do(ctx, "RPUSH", pre+"list:small", fmt.Sprint(i), fmt.Sprintf("e%d", i))
			p.Do(ctx, "RPUSH", pre+"list:big", strings.Repeat("x", 200)+fmt.Sprint(i), -i)
			p.Do(ctx, "SADD", pre+"set:int", i, -i*1000)
			p.Do(ctx, "SADD", pre+"set:str", fmt.Sprintf("member-%d", i))
			p.Do(ctx, "ZADD", pre+"zset:small", float64(i)/10, fmt.Sprintf("m%d", i))
			p.Do(ctx, "ZADD", pre+"zset:big", float64(i)*1.5-3, strings.Repeat("z", 70)+fmt.Sprint(i))
			p.Do(ctx, "HSET", pre+"hash:small", fmt.Sprintf("f%d", i), i)
			p.Do(ctx, "HSET", pre+"hash:big", fmt.Sprintf("field-%d", i), strings.Repeat("v", 80))
		}
		p.Do(ctx, "ZADD", pre+"zset:small", "+inf", "top", "-inf", "bottom", "0.1", "tenth", "1e20", "huge")
		p.Do(ctx, "RPUSH", pre+"list:plain", strings.Repeat("P", 9000), "tail")
		p.Do(ctx, "SET", pre+"bin:\x00\xff\r\n", "\x00\x01\x02binary\xfe")
		p.Do(ctx, "PEXPIREAT", pre+"hash:small", far)
		keys += 10
		for i := 0; i < max(n/20, 5); i++ {
			p.Do(ctx, "XADD", pre+"stream", fmt.Sprintf("%d-%d", 1000+i, i%3), "field", fmt.Sprint(i), "other", "x")
		}
		p.Do(ctx, "XGROUP", "CREATE", pre+"stream", "g1", "0")
		p.Do(ctx, "XGROUP", "CREATE", pre+"stream", "g2", "$")
		p.Do(ctx, "XREADGROUP", "GROUP", "g1", "alice", "COUNT", 3, "STREAMS", pre+"stream", ">")
		p.Do(ctx, "XDEL", pre+"stream", "1001-1")
		keys++
		_, err := p.Exec(ctx)
		dc.Close()
		must(err)
	}
	return keys
}

// BenchRDB returns the RDB file named by REDBACK_BENCH_RDB (for example
// bench/out/dataset/dump.rdb from bench/dataset.sh) and sets b's byte count
// to its size; it skips b when the variable is unset.
func BenchRDB(b *testing.B) string {
	p := os.Getenv("REDBACK_BENCH_RDB")
	if p == "" {
		b.Skip("REDBACK_BENCH_RDB is not set")
	}
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	return p
}

// SmallDump fills a fresh server with a small dataset of every type (two
// strings, one with a long TTL, a list, an intset and a listpack set, a
// zset, a hash, a stream, a function library, n keys "k:0".. and "db3" in
// db 3), runs extra (when not nil) with a command helper just before the
// db-3 key, SAVEs and returns the dump.rdb bytes.
func SmallDump(t *testing.T, n int, extra func(do func(args ...any))) []byte {
	t.Helper()
	s := Start(t)
	ctx := t.Context()
	conn := s.Client().Conn() // one connection, so SELECT holds
	defer conn.Close()
	do := func(args ...any) {
		t.Helper()
		if err := conn.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	do("SET", "s", "hello")
	do("SET", "n", "12345")
	do("SET", "ttl", "v", "PX", "100000000")
	do("RPUSH", "l", "a", "b", "c")
	do("SADD", "si", "1", "2", "3")
	do("SADD", "ss", "x", "y")
	do("ZADD", "z", "0.1", "m1", "2", "m2")
	do("HSET", "h", "f1", "v1", "f2", "v2")
	do("XADD", "x", "1-1", "a", "1")
	do("FUNCTION", "LOAD", "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 1 end)")
	for i := range n {
		do("SET", fmt.Sprintf("k:%d", i), i)
	}
	if extra != nil {
		extra(do)
	}
	do("SELECT", "3")
	do("SET", "db3", "x")
	do("SAVE")
	b, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PopulateAll is Populate plus what the server has beyond Redis 7.0: on
// one with hash-field TTLs (Bin.HashFieldTTL), in dbs 0 and 1, a small
// hash with some fields expiring (listpack with TTLs), a big one (hash
// table with TTLs) and a hash whose only TTLs are far apart, all far in
// the future; on Redis 8.6 and later a stream with IDMP producers. It
// returns the number of keys written.
func PopulateAll(t testing.TB, s *Server, n int) int {
	t.Helper()
	keys := Populate(t, s, n)
	if !s.Bin.HashFieldTTL() {
		return keys
	}
	ctx := context.Background()
	far := time.Now().Add(240 * time.Hour).UnixMilli()
	for _, db := range []int{0, 1} {
		dc := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db, DisableIdentity: true, TLSConfig: s.tls})
		p := dc.Pipeline()
		pre := fmt.Sprintf("db%d:", db)
		for i := 0; i < 8; i++ {
			p.Do(ctx, "HSET", pre+"hfe:small", fmt.Sprintf("f%d", i), i)
		}
		p.Do(ctx, "HPEXPIREAT", pre+"hfe:small", far+11, "FIELDS", 3, "f0", "f1", "f2")
		p.Do(ctx, "HPEXPIREAT", pre+"hfe:small", far+22, "FIELDS", 1, "f5")
		for i := 0; i < 300; i++ {
			p.Do(ctx, "HSET", pre+"hfe:big", fmt.Sprintf("field-%d", i), strings.Repeat("v", 10+i%50))
		}
		for i := 0; i < 300; i += 7 {
			p.Do(ctx, "HPEXPIREAT", pre+"hfe:big", far+int64(i), "FIELDS", 1, fmt.Sprintf("field-%d", i))
		}
		p.Do(ctx, "HSET", pre+"hfe:keyttl", "a", "1", "b", "2")
		p.Do(ctx, "HPEXPIREAT", pre+"hfe:keyttl", far+5, "FIELDS", 1, "a")
		p.Do(ctx, "PEXPIREAT", pre+"hfe:keyttl", far+100)
		_, err := p.Exec(ctx)
		dc.Close()
		if err != nil {
			t.Fatalf("populate hash-field TTLs: %v", err)
		}
		keys += 3
	}
	if s.Bin.Family == "redis" && s.Bin.AtLeast(8, 6) {
		// Redis 8.6: a stream with IDMP state (RDB type 26).
		c := s.Client()
		for i, pid := range []string{"p1", "p2", "p1", "p1"} {
			if err := c.Do(ctx, "XADD", "idmp:stream", "IDMP", pid, fmt.Sprintf("iid-%d", i%3), "*", "n", i).Err(); err != nil {
				t.Fatalf("populate IDMP stream: %v", err)
			}
		}
		if err := c.Do(ctx, "XGROUP", "CREATE", "idmp:stream", "g", "0").Err(); err != nil {
			t.Fatalf("populate IDMP stream: %v", err)
		}
		keys++
	}
	return keys
}

// FieldTTLs returns HPEXPIRETIME of every field of every hash in dbs 0–3
// that has at least one field TTL, keyed "db:key" then field; nil on a
// server without hash-field TTLs.
func FieldTTLs(t testing.TB, s *Server) map[string]map[string]int64 {
	t.Helper()
	if !s.Bin.HashFieldTTL() {
		return nil
	}
	ctx := context.Background()
	out := map[string]map[string]int64{}
	for db := 0; db < 4; db++ {
		dc := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db, DisableIdentity: true, TLSConfig: s.tls})
		keys, err := dc.Keys(ctx, "*").Result()
		if err != nil {
			dc.Close()
			t.Fatalf("KEYS: %v", err)
		}
		for _, k := range keys {
			if typ, _ := dc.Type(ctx, k).Result(); typ != "hash" {
				continue
			}
			fields, err := dc.HKeys(ctx, k).Result()
			if err != nil {
				dc.Close()
				t.Fatalf("HKEYS %s: %v", k, err)
			}
			args := []any{"HPEXPIRETIME", k, "FIELDS", len(fields)}
			for _, f := range fields {
				args = append(args, f)
			}
			ts, err := dc.Do(ctx, args...).Int64Slice()
			if err != nil {
				dc.Close()
				t.Fatalf("HPEXPIRETIME %s: %v", k, err)
			}
			m := map[string]int64{}
			for i, f := range fields {
				if ts[i] >= 0 {
					m[f] = ts[i]
				}
			}
			if len(m) > 0 {
				out[fmt.Sprintf("%d:%s", db, k)] = m
			}
		}
		dc.Close()
	}
	return out
}
