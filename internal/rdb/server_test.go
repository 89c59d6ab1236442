package rdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"redback/internal/redistest"
)

// populate writes keys of every encoding Redis 7.0 saves into several dbs
// and returns the number of keys per db.
func populate(t *testing.T, ctx context.Context, s *redistest.Server) {
	t.Helper()
	c := s.Client()
	must := func(args ...any) {
		t.Helper()
		if err := c.Do(ctx, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("%v: %v", args, err)
		}
	}
	big := strings.Repeat("x", 9000) // > 8 KB: a PLAIN quicklist node
	must("CONFIG", "SET", "list-max-listpack-size", "4")
	must("CONFIG", "SET", "rdbcompression", "yes")
	must("CONFIG", "SET", "list-compress-depth", "1")
	must("FUNCTION", "LOAD", "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 1 end)")
	for db := range 3 {
		must("SELECT", db)
		p := fmt.Sprintf("db%d:", db)
		must("SET", p+"int", "12345")
		must("SET", p+"neg", "-7")
		must("SET", p+"big-int", "123456789012")
		must("SET", p+"str", "hello")
		must("SET", p+"lzf", strings.Repeat("abcdefgh", 40))
		must("SET", p+"ttl", "v", "PX", "100000000")
		must("SET", "\x00\xff binary\r\nkey"+p, "\x00\x01\x02")
		must("SET", "42"+strconv.Itoa(db), "int key")
		must("RPUSH", p+"list-small", "a", "b", "1", "-1", "40000", "-5000000", "9999999999999")
		for i := range 30 {
			must("RPUSH", p+"list-multi", "elem"+strconv.Itoa(i), i)
		}
		must("RPUSH", p+"list-plain", "a", big, "b")
		for i := range 40 {
			must("RPUSH", p+"list-compressed", strings.Repeat("compressible-", 3)+strconv.Itoa(i))
		}
		must("SADD", p+"set-int", 1, 2, 3, -40000, 1<<40)
		must("SADD", p+"set-str", "a", "b", "c")
		must("HSET", p+"hash-lp", "f1", "v1", "f2", 22, "n", "-3")
		must("ZADD", p+"zset-lp", 1.5, "a", 2, "b", -3.25, "c", "inf", "d")
		for i := range 200 {
			must("SADD", p+"set-ht", "m"+strconv.Itoa(i))
			must("HSET", p+"hash-ht", "f"+strconv.Itoa(i), strings.Repeat("v", i%50))
			must("ZADD", p+"zset-sl", float64(i)*0.5-10, "m"+strconv.Itoa(i))
		}
		must("HSET", p+"hash-lzf", "long", strings.Repeat("z", 200))
		must("XADD", p+"stream", "1-1", "f1", "v1", "f2", "v2")
		must("XADD", p+"stream", "1-2", "f1", "x", "f2", "y")
		must("XADD", p+"stream", "2-0", "other", "x")
		must("XADD", p+"stream", "3-0", "f1", 5, "f2", -100)
		must("XDEL", p+"stream", "1-2")
		must("XGROUP", "CREATE", p+"stream", "g1", "0")
		must("XGROUP", "CREATE", p+"stream", "g2", "$")
		must("XREADGROUP", "GROUP", "g1", "alice", "COUNT", "2", "STREAMS", p+"stream", ">")
		must("XREADGROUP", "GROUP", "g1", "bob", "COUNT", "1", "STREAMS", p+"stream", ">")
		must("XGROUP", "CREATECONSUMER", p+"stream", "g1", "carol")
		for i := range 300 {
			must("XADD", p+"stream-big", "*", "i", i, "name", "n"+strconv.Itoa(i))
		}
		must("XADD", p+"stream-empty", "5-5", "a", "b")
		must("XDEL", p+"stream-empty", "5-5")
	}
	must("CONFIG", "SET", "hash-max-listpack-entries", "0")
	must("SELECT", 0)
	must("HSET", "forced-ht", "a", "b")
	must("SELECT", 5)
	must("SET", "only", "in db 5")
}

func TestReader_RealServer(t *testing.T) {
	ctx := t.Context()
	s := redistest.Start(t)
	populate(t, ctx, s)
	c := s.Client()
	if err := c.Do(ctx, "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(iotest.OneByteReader(bytes.NewReader(data)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Version() != 10 {
		t.Fatalf("Version = %d, want 10", r.Version())
	}
	counts := map[int]int{}
	types := map[Type]int{}
	conns := map[int]*redis.Conn{}
	functions := 0
	for i := 0; ; i++ {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch rec.Kind {
		case RecordFunction:
			functions++
			if !bytes.Contains(rec.FunctionCode, []byte("name=mylib")) {
				t.Errorf("function code %q", rec.FunctionCode)
			}
		case RecordKey:
			if b := data[rec.Offset]; b != byte(rec.Type) && b != opExpireTimeMS {
				t.Errorf("key %q: byte at Offset %d is 0x%02x", rec.Key, rec.Offset, b)
			}
			counts[rec.DB]++
			types[rec.Type]++
			cn := conns[rec.DB]
			if cn == nil {
				cn = c.Conn()
				defer cn.Close()
				if err := cn.Select(ctx, rec.DB).Err(); err != nil {
					t.Fatal(err)
				}
				conns[rec.DB] = cn
			}
			want, err := cn.Dump(ctx, string(rec.Key)).Result()
			if err != nil {
				t.Fatalf("DUMP %q: %v", rec.Key, err)
			}
			if got := DumpPayload(rec.Type, rec.Value, 10); !bytes.Equal(got, []byte(want)) {
				t.Errorf("db %d key %q type %d: DumpPayload differs from DUMP\n got %x\nwant %x", rec.DB, rec.Key, rec.Type, got, want)
			}
			if bytes.HasSuffix(rec.Key, []byte("ttl")) != (rec.Expire > 0) {
				t.Errorf("key %q: Expire %d", rec.Key, rec.Expire)
			}
			compareWithServer(t, ctx, cn, rec)
		}
	}
	if r.Checksum() != ChecksumOK {
		t.Errorf("Checksum = %v, want ok", r.Checksum())
	}
	if functions != 1 {
		t.Errorf("%d function records, want 1", functions)
	}
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "db") {
			continue
		}
		var db, keys int
		if _, err := fmt.Sscanf(line, "db%d:keys=%d", &db, &keys); err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		if counts[db] != keys {
			t.Errorf("db %d: read %d keys, INFO says %d", db, counts[db], keys)
		}
	}
	for _, typ := range []Type{TypeString, TypeSet, TypeHash, TypeZSet2, TypeSetIntset, TypeHashListpack, TypeZSetListpack, TypeListQuicklist2, TypeStreamListpacks2} {
		if types[typ] == 0 {
			t.Errorf("no key of type %d in the dump", typ)
		}
	}
}

// decodeText decodes a value into sorted (sets, hashes, zsets) or ordered
// (strings, lists, streams) text lines.
func decodeText(t *testing.T, typ Type, raw []byte) ([]string, *StreamInfo) {
	t.Helper()
	var out []string
	var info *StreamInfo
	err := Decode(typ, raw, &Visitor{
		String:    func(v []byte) error { out = append(out, string(v)); return nil },
		ListElem:  func(v []byte) error { out = append(out, string(v)); return nil },
		SetMember: func(m []byte) error { out = append(out, string(m)); return nil },
		ZSetMember: func(m []byte, s float64) error {
			out = append(out, string(m)+"="+strconv.FormatFloat(s, 'g', -1, 64))
			return nil
		},
		HashField: func(f, v []byte, exp int64) error {
			l := string(f) + "=" + string(v)
			if exp != 0 {
				l += "@" + strconv.FormatInt(exp, 10)
			}
			out = append(out, l)
			return nil
		},
		StreamEntry: func(ms, seq uint64, fields [][]byte) error {
			l := fmt.Sprintf("%d-%d", ms, seq)
			for _, f := range fields {
				l += " " + string(f)
			}
			out = append(out, l)
			return nil
		},
		Stream: func(s *StreamInfo) error { info = s; return nil },
	})
	if err != nil {
		t.Fatalf("Decode type %d: %v", typ, err)
	}
	if k, _ := KindOf(typ); k == KindSet || k == KindHash || k == KindZSet {
		slices.Sort(out)
	}
	return out, info
}

func compareWithServer(t *testing.T, ctx context.Context, cn *redis.Conn, rec *Record) {
	t.Helper()
	got, info := decodeText(t, rec.Type, rec.Value)
	key := string(rec.Key)
	var want []string
	k, _ := KindOf(rec.Type)
	switch k {
	case KindString:
		want = []string{cn.Get(ctx, key).Val()}
	case KindList:
		want = cn.LRange(ctx, key, 0, -1).Val()
	case KindSet:
		want = cn.SMembers(ctx, key).Val()
	case KindHash:
		for f, v := range cn.HGetAll(ctx, key).Val() {
			want = append(want, f+"="+v)
		}
	case KindZSet:
		for _, z := range cn.ZRangeWithScores(ctx, key, 0, -1).Val() {
			want = append(want, z.Member.(string)+"="+strconv.FormatFloat(z.Score, 'g', -1, 64))
		}
	case KindStream:
		for _, m := range cn.XRange(ctx, key, "-", "+").Val() {
			l := m.ID
			// go-redis returns a map; rebuild f v pairs in the order of the raw reply
			raw := cn.Do(ctx, "XRANGE", key, m.ID, m.ID).Val().([]any)[0].([]any)[1].([]any)
			for _, f := range raw {
				l += " " + f.(string)
			}
			want = append(want, l)
		}
		groups := cn.XInfoGroups(ctx, key).Val()
		if info == nil || len(info.Groups) != len(groups) {
			t.Fatalf("key %q: stream info %+v, server groups %+v", key, info, groups)
		}
		for i, g := range groups {
			dg := info.Groups[i]
			ld := fmt.Sprintf("%d-%d", dg.LastDeliveredID.Ms, dg.LastDeliveredID.Seq)
			if string(dg.Name) != g.Name || int64(len(dg.PEL)) != g.Pending || int64(len(dg.Consumers)) != g.Consumers || ld != g.LastDeliveredID {
				t.Errorf("key %q group %d: decoded %s pel=%d consumers=%d last=%s, server %+v", key, i, dg.Name, len(dg.PEL), len(dg.Consumers), ld, g)
			}
		}
		if xl := cn.XLen(ctx, key).Val(); uint64(xl) != info.Length {
			t.Errorf("key %q: Length %d, XLEN %d", key, info.Length, xl)
		}
	}
	if k == KindSet || k == KindHash || k == KindZSet {
		slices.Sort(want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("key %q type %d: decoded elements differ from the server (-server +decoded):\n%s", key, rec.Type, diff)
	}
}

// TestWriter_RoundTrip copies every record of a real dump through Writer
// into a new file, loads it into a second server and compares DEBUG DIGEST.
func TestWriter_RoundTrip(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	populate(t, ctx, src)
	if err := src.Client().Do(ctx, "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile(filepath.Join(src.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(out, 10)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch rec.Kind {
		case RecordAux:
			err = w.WriteAux(rec.AuxKey, rec.AuxValue)
		case RecordFunction:
			err = w.WriteFunction(rec.FunctionCode)
		case RecordSelectDB:
			err = w.SelectDB(rec.DB)
		case RecordResizeDB:
			err = w.ResizeDB(rec.DBSize, rec.ExpiresSize)
		case RecordKey:
			err = w.WriteKey(rec.Key, rec.Type, rec.Value, rec.Expire, rec.Idle, rec.Freq)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	dst := redistest.StartInDir(t, dir)
	if got, want := dst.Digest(ctx), src.Digest(ctx); got != want {
		t.Fatalf("digest after round trip %s, want %s; log:\n%s", got, want, dst.Log())
	}
	fl, err := dst.Client().Do(ctx, "FUNCTION", "LIST").Slice()
	if err != nil || len(fl) != 1 {
		t.Fatalf("FUNCTION LIST after round trip: %v, %v", fl, err)
	}
}
