package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/redistest"
	"redback/internal/storage/mem"
)

// replState is what a restore by replication must leave as it was.
type replState struct {
	role, masterauth, disklessLoad string
}

func targetState(t *testing.T, ctx context.Context, s *redistest.Server) replState {
	t.Helper()
	c := s.Client()
	role, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		t.Fatalf("ROLE: %v", err)
	}
	get := func(name string) string {
		v, err := c.ConfigGet(ctx, name).Result()
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v", name, err)
		}
		return v[name]
	}
	return replState{role: fmt.Sprint(role[0]), masterauth: get("masterauth"), disklessLoad: get("repl-diskless-load")}
}

// expectAsBefore checks the target is a primary with its config as before.
func expectAsBefore(t *testing.T, ctx context.Context, s *redistest.Server, before replState) {
	t.Helper()
	if got := targetState(t, ctx, s); got != before {
		t.Errorf("target after the restore: %+v, want %+v", got, before)
	}
}

func TestToRedis_Replicate(t *testing.T) {
	redistest.EachServer(t, func(t *testing.T, b redistest.Bin) {
		ctx := t.Context()
		src := redistest.StartBin(t, b)
		populate(t, ctx, src)
		path := saveRDB(t, ctx, src)
		dst := redistest.StartBin(t, b, "--masterauth", "old-secret")
		before := targetState(t, ctx, dst)
		var progressKeys atomic.Int64
		res, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Method: MethodAuto, Progress: func(_, k int64) { progressKeys.Add(k) }})
		if err != nil {
			t.Fatalf("ToRedis: %v (%+v)", err, res)
		}
		t.Logf("result: %+v", res)
		if res.Method != "replicate" || res.Digest == "" || res.FunctionsLoaded != 1 || res.KeysRestored == 0 {
			t.Errorf("result %+v: want method replicate, a digest, 1 function", res)
		}
		if progressKeys.Load() != res.KeysRestored+res.KeysExpired {
			t.Errorf("progress counted %d keys, restored %d", progressKeys.Load(), res.KeysRestored)
		}
		compareServers(t, ctx, src, dst)
		expectAsBefore(t, ctx, dst, before)
		if res.Digest != src.Digest(ctx) {
			t.Errorf("result digest %s, source %s", res.Digest, src.Digest(ctx))
		}
		if err := dst.Client().Set(ctx, "writable", "1", 0).Err(); err != nil {
			t.Errorf("target not writable after the restore: %v", err)
		}

		t.Run("VerifySample", func(t *testing.T) {
			dst := redistest.StartBin(t, b)
			before := targetState(t, ctx, dst)
			res, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Method: MethodReplicate, VerifySample: true})
			if err != nil {
				t.Fatalf("ToRedis: %v", err)
			}
			if res.Method != "replicate" || res.VerifiedBy != "sample" || res.SampleChecked == 0 || res.SampleMismatches != 0 || res.DigestSeconds != 0 || res.Digest != "" {
				t.Errorf("result %+v: want replicate, verified by a sample, no DEBUG DIGEST asked", res)
			}
			if g, w := dst.Digest(ctx), src.Digest(ctx); g != w {
				t.Errorf("digest %s, source %s", g, w)
			}
			expectAsBefore(t, ctx, dst, before)
		})

		t.Run("Filtered", func(t *testing.T) {
			dst := redistest.StartBin(t, b)
			before := targetState(t, ctx, dst)
			f := Filter{DBs: []int{0, 5}, MapDB: map[int]int{5: 7}, Match: []string{"db*"}}
			res, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Method: MethodReplicate, Filter: f})
			if err != nil {
				t.Fatalf("ToRedis: %v", err)
			}
			// The same filters through RESTORE commands give the same data.
			ref := redistest.StartBin(t, b)
			if _, err := ToRedis(ctx, FileSource(path), targetURL(t, ref), Options{Method: MethodRestore, Filter: f}); err != nil {
				t.Fatal(err)
			}
			if res.Method != "replicate" || res.KeysFiltered == 0 {
				t.Errorf("result %+v", res)
			}
			if g, w := dst.Digest(ctx), ref.Digest(ctx); g != w || g != res.Digest {
				t.Errorf("filtered: digest %s, by RESTORE %s, result %s", g, w, res.Digest)
			}
			if n, _ := dst.Client().Do(ctx, "SELECT", 7).Result(); n == nil {
				t.Error("no db 7")
			}
			expectAsBefore(t, ctx, dst, before)
		})
	})
}

// sealed seals raw as a verified snapshot s1 and returns its manifest
// and stored bytes.
func sealed(t *testing.T, raw []byte) (*catalog.Snapshot, []byte) {
	t.Helper()
	var stored bytes.Buffer
	w, err := pack.NewWriter(&stored, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(raw)
	w.Close()
	snap := &catalog.Snapshot{ID: "s1", Verified: true, Object: catalog.Object{Key: "data/snapshots/s1.rdb.zst",
		RawBytes: int64(len(raw)), StoredBytes: w.Stored.N, SHA256: w.Stored.Sum(), Compression: pack.CompressionZstd}}
	return snap, stored.Bytes()
}

// snapshotOf seals the RDB at path as a verified snapshot with its
// manifest digest (and a census saying whether it holds sorted sets) in
// a mem backend.
func snapshotOf(t *testing.T, ctx context.Context, path, dgst string, zsets bool) Source {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	snap, stored := sealed(t, raw)
	snap.Digest = dgst
	snap.Census.Types = map[string]int64{}
	if zsets {
		snap.Census.Types["zset"] = 1
	}
	b := mem.New()
	if _, err := b.Put(ctx, snap.Object.Key, bytes.NewReader(stored)); err != nil {
		t.Fatal(err)
	}
	return SnapshotSource(b, snap, nil)
}

func TestToRedis_ReplicateSnapshot(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	populate(t, ctx, src)
	path := saveRDB(t, ctx, src)
	want := src.Digest(ctx)

	dst := redistest.Start(t)
	before := targetState(t, ctx, dst)
	s := snapshotOf(t, ctx, path, want, true)
	res, err := ToRedis(ctx, s, targetURL(t, dst), Options{Method: MethodAuto})
	if err != nil || res.Method != "replicate" || res.Digest != want {
		t.Fatalf("ToRedis: %v (%+v), want replicate with digest %s", err, res, want)
	}
	compareServers(t, ctx, src, dst)
	expectAsBefore(t, ctx, dst, before)

	// A manifest digest that is not the data's: the target shows the
	// data's, the restore fails (exit 3) and the target is empty again.
	dst2 := redistest.Start(t)
	s = snapshotOf(t, ctx, path, strings.Repeat("ab", 20), false)
	_, err = ToRedis(ctx, s, targetURL(t, dst2), Options{Method: MethodReplicate})
	var de *DigestError
	if !errors.As(err, &de) || !de.VerificationFailed() || !strings.Contains(err.Error(), "empty again") {
		t.Fatalf("wrong manifest digest: %v, want a DigestError saying the target is empty again", err)
	}
	if n, _ := dst2.Client().DBSize(ctx).Result(); n != 0 {
		t.Errorf("target holds %d keys after the failed restore", n)
	}
	expectAsBefore(t, ctx, dst2, before)
}

func TestToRedis_ReplicateFallback(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	populate(t, ctx, src)
	path := saveRDB(t, ctx, src)

	t.Run("NotEmpty", func(t *testing.T) {
		dst := redistest.Start(t)
		dst.Client().Set(ctx, "other", "x", 0)
		before := targetState(t, ctx, dst)
		res, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Method: MethodAuto, Conflict: ConflictReplace})
		if err != nil || res.Method != "restore" || !strings.Contains(strings.Join(res.Notes, " "), "holds 1 keys") {
			t.Fatalf("auto into a non-empty target: %v, %+v; want the RESTORE path with a note", err, res)
		}
		if v, _ := dst.Client().Get(ctx, "other").Result(); v != "x" {
			t.Error("the target's own key is gone")
		}
		expectAsBefore(t, ctx, dst, before)
		// --method replicate --conflict replace replaces the whole dataset.
		res, err = ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Method: MethodReplicate, Conflict: ConflictReplace})
		if err != nil || res.Method != "replicate" {
			t.Fatalf("replicate --conflict replace: %v, %+v", err, res)
		}
		if g, w := dst.Digest(ctx), src.Digest(ctx); g != w {
			t.Errorf("digest %s, want %s", g, w)
		}
		expectAsBefore(t, ctx, dst, before)
		// --method replicate without replace refuses, writing nothing.
		dst2 := redistest.Start(t)
		dst2.Client().Set(ctx, "other", "x", 0)
		if _, err := ToRedis(ctx, FileSource(path), targetURL(t, dst2), Options{Method: MethodReplicate}); err == nil || !strings.Contains(err.Error(), "nothing was written") {
			t.Errorf("replicate into a non-empty target: %v", err)
		}
	})

	t.Run("ReplicaOfRefused", func(t *testing.T) {
		dst := redistest.Start(t, "--rename-command", "REPLICAOF", "", "--rename-command", "SLAVEOF", "")
		before := targetState(t, ctx, dst)
		res, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Method: MethodAuto})
		if err != nil || res.Method != "restore" || !strings.Contains(strings.Join(res.Notes, " "), "refuses REPLICAOF") {
			t.Fatalf("REPLICAOF renamed away: %v, %+v; want the RESTORE path with a note", err, res)
		}
		compareServers(t, ctx, src, dst)
		expectAsBefore(t, ctx, dst, before)
		dst2 := redistest.Start(t, "--rename-command", "REPLICAOF", "", "--rename-command", "SLAVEOF", "")
		if _, err := ToRedis(ctx, FileSource(path), targetURL(t, dst2), Options{Method: MethodReplicate}); err == nil || !strings.Contains(err.Error(), "REPLICAOF") {
			t.Errorf("--method replicate: %v, want an error about REPLICAOF", err)
		}
		expectAsBefore(t, ctx, dst2, before)
	})

	t.Run("NewerRDB", func(t *testing.T) {
		nb, ok := redistest.Find(t, "redis", 7, 4)
		if !ok {
			t.Skip("no Redis 7.4 or later in REDBACK_TEST_SERVERS")
		}
		newer := redistest.StartBin(t, nb)
		populate(t, ctx, newer)
		npath := saveRDB(t, ctx, newer)
		dst := redistest.Start(t) // 7.0: loads RDB 10 at most
		if dst.Bin.AtLeast(7, 4) {
			t.Skip("the default server is not older than RDB 12")
		}
		res, err := ToRedis(ctx, FileSource(npath), targetURL(t, dst), Options{Method: MethodAuto})
		if err != nil || res.Method != "restore" || !strings.Contains(strings.Join(res.Notes, " "), "does not load RDB version 12") {
			t.Fatalf("RDB 12 into %s: %v, %+v; want the RESTORE path with a note", dst.Bin.Name(), err, res)
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		dst := redistest.Start(t)
		before := targetState(t, ctx, dst)
		defer func(d time.Duration) { replicaConnectTimeout = d }(replicaConnectTimeout)
		replicaConnectTimeout = 3 * time.Second
		// A closed loopback port: the target never connects.
		closed := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
		res, err := ToRedis(ctx, FileSource(path), targetURL(t, dst), Options{Method: MethodReplicate, Listen: "127.0.0.1:0", Advertise: closed})
		if err == nil || !strings.Contains(err.Error(), "did not connect") || res.Method != "replicate" {
			t.Fatalf("unreachable: %v, want an error saying the target did not connect", err)
		}
		expectAsBefore(t, ctx, dst, before)
		if n, _ := dst.Client().DBSize(ctx).Result(); n != 0 {
			t.Errorf("target holds %d keys", n)
		}
	})
}

// cutProxy forwards loopback connections to "to" and cuts each one after
// limit bytes from to's side: a link lost mid-stream.
func cutProxy(t *testing.T, to string, limit int64) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.CopyN(c, u, limit)
			}()
		}
	}()
	return l.Addr().String()
}

// TestToRedis_ReplicateCutMidStream cuts the target's link to redback while
// the payload streams (a proxy), and cancels another restore mid-stream:
// the target ends empty, a primary, its config as before.
func TestToRedis_ReplicateCutMidStream(t *testing.T) {
	ctx := t.Context()
	src := redistest.Start(t)
	if err := src.Client().Do(ctx, "DEBUG", "POPULATE", 100000, "key", 100).Err(); err != nil {
		t.Fatal(err)
	}
	path := saveRDB(t, ctx, src)
	for _, how := range []string{"cut-link", "cancel"} {
		t.Run(how, func(t *testing.T) {
			dst := redistest.Start(t)
			before := targetState(t, ctx, dst)
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			o := Options{Method: MethodReplicate, Timeout: 20 * time.Second}
			switch how {
			case "cut-link":
				o.Listen = fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
				o.Advertise = cutProxy(t, o.Listen, 1<<20)
			case "cancel":
				var fired atomic.Bool
				o.Progress = func(bytes, keys int64) {
					if !fired.Swap(true) {
						cancel()
					}
				}
			}
			res, err := ToRedis(rctx, FileSource(path), targetURL(t, dst), o)
			if err == nil || !strings.Contains(err.Error(), "empty again, a primary") {
				t.Fatalf("%s: %v (%+v), want a failure saying the target is empty again", how, err, res)
			}
			t.Logf("%s: %v", how, err)
			expectAsBefore(t, ctx, dst, before)
			if n, _ := dst.Client().DBSize(ctx).Result(); n != 0 {
				t.Errorf("target holds %d keys", n)
			}
		})
	}
}
