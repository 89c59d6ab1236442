package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"redback/internal/pack"
	"redback/internal/rdb"
	"redback/internal/redistest"

	"github.com/redis/go-redis/v9"
)

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
	ctx := t.Context()
	src, path := bigSource(t, ctx, nil)
	const bound = 40 << 20
	restore := func(t *testing.T, dst *redistest.Server, o Options) *Result {
		t.Helper()
		var res *Result
		var err error
		peak := redistest.HeapPeak(func() { res, err = ToRedis(ctx, FileSource(path), targetURL(t, dst), o) })
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

// bigSource starts a server holding bigValues and what more adds (when
// not nil) and returns it with its saved RDB's path; skipped by -short.
func bigSource(t *testing.T, ctx context.Context, more func(*redis.Client)) (*redistest.Server, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("64 MiB values")
	}
	src := redistest.Start(t)
	bigValues(t, ctx, src)
	if more != nil {
		more(src.Client())
	}
	return src, saveRDB(t, ctx, src)
}

// refServer starts a server on (a hard link to) the RDB at path: the
// oracle of a filtered restore once the keys the filter drops are
// deleted from it.
func refServer(t *testing.T, path string) *redistest.Server {
	t.Helper()
	dir := t.TempDir()
	if err := os.Link(path, filepath.Join(dir, "dump.rdb")); err != nil {
		t.Fatal(err)
	}
	return redistest.StartInDir(t, dir)
}

// A filtered restore holds no big value whole either: into a file (then
// loaded by a server) and by replication the kept big values (a 64 MiB
// string, the 64 MiB list, ...) are copied into the rewritten RDB as
// their bytes stream, and digested piece by piece; by RESTORE commands
// they are spooled; a big value filtered out (the hash) is only checked
// as it passes. The target's DEBUG DIGEST and TTLs equal those of a copy
// of the source with the dropped keys deleted (and db 0 swapped to db 3
// for --map-db), and the heap stays well under the 64 MiB values.
func TestRestore_FilteredBigValuesStreamed(t *testing.T) {
	ctx := t.Context()
	_, path := bigSource(t, ctx, func(c *redis.Client) {
		rng := rand.New(rand.NewPCG(3, 4))
		chunk := make([]byte, 1<<20)
		for range 64 {
			for i := range chunk {
				chunk[i] = byte(rng.Uint32())
			}
			c.Append(ctx, "big:str64", string(chunk))
		}
		c.PExpireAt(ctx, "big:str64", time.UnixMilli(farFuture))
	})

	// Kept: big:list, big:set, big:stream, big:string, big:str64; dropped:
	// big:hash (a big value) and the small keys.
	match := []string{"big:[ls]*"}
	const bound = 40 << 20
	for _, tc := range []struct {
		name string
		flt  Filter
		db   int // where the kept keys land
	}{
		{"Match", Filter{Match: match}, 0},
		{"MapDB", Filter{Match: match, DBs: []int{0}, MapDB: map[int]int{0: 3}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := refServer(t, path)
			rc := ref.Client()
			keys, err := rc.Keys(ctx, "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			kept := 0
			for _, k := range keys {
				if Match([]byte(match[0]), []byte(k)) {
					kept++
				} else if err := rc.Del(ctx, k).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if kept != 5 {
				t.Fatalf("%d keys kept, want 5 (%d keys)", kept, len(keys))
			}
			if tc.db != 0 {
				if err := rc.Do(ctx, "SWAPDB", 0, tc.db).Err(); err != nil {
					t.Fatal(err)
				}
			}
			check := func(t *testing.T, peak uint64, res *Result, got *redistest.Server) {
				t.Helper()
				t.Logf("HeapInuse peak %.1f MiB; %+v", float64(peak)/(1<<20), res)
				if peak > bound {
					t.Errorf("HeapInuse peak %.1f MiB, want under %d MiB", float64(peak)/(1<<20), bound>>20)
				}
				if res.KeysRestored != 5 || res.KeysFiltered != int64(len(keys)-5) {
					t.Errorf("%d keys restored, %d filtered; want 5 and %d", res.KeysRestored, res.KeysFiltered, len(keys)-5)
				}
				compareServers(t, ctx, ref, got)
			}
			o := Options{Filter: tc.flt}
			t.Run("Dir", func(t *testing.T) {
				dir := t.TempDir()
				var res *Result
				var err error
				peak := redistest.HeapPeak(func() { res, err = ToDir(ctx, FileSource(path), dir, o) })
				if err != nil {
					t.Fatalf("ToDir: %v", err)
				}
				check(t, peak, res, redistest.StartInDir(t, dir))
			})
			for _, m := range []Method{MethodRestore, MethodReplicate} {
				t.Run(m.String(), func(t *testing.T) {
					dst := redistest.Start(t)
					o := o
					o.Method = m
					var res *Result
					var err error
					peak := redistest.HeapPeak(func() { res, err = ToRedis(ctx, FileSource(path), targetURL(t, dst), o) })
					if err != nil {
						t.Fatalf("ToRedis: %v (%+v)", err, res)
					}
					if res.Method != m.String() {
						t.Errorf("method %s, want %s", res.Method, m)
					}
					check(t, peak, res, dst)
				})
			}
		})
	}

	// Damage inside the kept list (an element's encoding byte made a
	// listpack's end mark) is found as the list streams: a verification
	// failure naming the key and its offset, nothing published.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte("500000-"))
	if at < 1 || data[at-1] != 0x80|63 {
		t.Fatalf("element 500000 of big:list not found as a 63-byte listpack string (at %d)", at)
	}
	data[at-1] = 0xFF
	bad := filepath.Join(t.TempDir(), "bad.rdb")
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	damaged := func(t *testing.T, err error) {
		t.Helper()
		var de *DamagedSourceError
		var fe *rdb.FormatError
		if !errors.As(err, &de) || !pack.VerificationFailed(err) || !errors.As(err, &fe) {
			t.Fatalf("err %v, want a DamagedSourceError of a FormatError", err)
		}
		if string(fe.Key) != "big:list" || fe.Offset <= 0 || fe.Offset >= int64(len(data)) || !strings.Contains(err.Error(), `key "big:list"`) {
			t.Errorf("err %v: want key big:list and an offset in the file", err)
		}
	}
	o := Options{Filter: Filter{Match: match}}
	t.Run("Damaged/Dir", func(t *testing.T) {
		dir := t.TempDir()
		_, err := ToDir(ctx, FileSource(bad), dir, o)
		damaged(t, err)
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("dir holds %d entries after the failure, want none", len(ents))
		}
	})
	for _, m := range []Method{MethodRestore, MethodReplicate} {
		t.Run("Damaged/"+m.String(), func(t *testing.T) {
			dst := redistest.Start(t)
			o := o
			o.Method = m
			_, err := ToRedis(ctx, FileSource(bad), targetURL(t, dst), o)
			damaged(t, err)
			if n, err := dst.Client().Exists(ctx, "big:list").Result(); err != nil || n != 0 {
				t.Errorf("the damaged list is on the target (%d, %v)", n, err)
			}
			if m == MethodReplicate {
				if n, err := dst.Client().DBSize(ctx).Result(); err != nil || n != 0 {
					t.Errorf("the target holds %d keys after the failure (%v), want none", n, err)
				}
			}
		})
	}
}
