package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/redistest"
)

// TestServers runs one representative of every end-to-end family against
// each server of $REDBACK_TEST_SERVERS (scripts/test.sh names Redis 7.0 and
// 8.0 and Valkey 8.1 and 9.1): an all-types dataset (hash-field TTLs where
// the server has them) shipped and snapshotted; snapshot → restore
// digest-equal with equal HPEXPIRETIMEs; more writes (hash-field TTL
// commands among them), FLUSHALL, restore --before-command FLUSHALL
// digest-equal; a drill; a migrate of the restored copy.
func TestServers(t *testing.T) {
	redistest.EachServer(t, func(t *testing.T, b redistest.Bin) {
		ctx := t.Context()
		src := redistest.StartBin(t, b)
		redistest.PopulateAll(t, src, 200)
		repo := t.TempDir()
		// ship writes source "s" (and holds its lease); the snapshot is
		// source "snap" of the same repository.
		stopShip := shipInBackground(t, src, repo)

		// snapshot → restore
		want, wantTTLs := src.Digest(ctx), redistest.FieldTTLs(t, src)
		code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo, "--name", "snap", "--method", "sync", "--json")
		if code != ExitOK {
			t.Fatalf("snapshot: exit %d\n%s", code, errs)
		}
		var snap catalog.Snapshot
		if err := json.Unmarshal([]byte(out), &snap); err != nil || !snap.Verified {
			t.Fatalf("snapshot: %v\n%s", err, out)
		}
		dst := redistest.StartBin(t, b)
		if code, _, errs := runCLI(t, "restore", "--repo", repo, "--name", "snap", "--snapshot", snap.ID, "--to-redis", dst.URL()); code != ExitOK {
			t.Fatalf("restore: exit %d\n%s", code, errs)
		}
		if got := dst.Digest(ctx); got != want {
			t.Fatalf("restore: digest %s, want %s", got, want)
		}
		if got := redistest.FieldTTLs(t, dst); !maps.EqualFunc(got, wantTTLs, maps.Equal) {
			t.Fatalf("restore: HPEXPIRETIMEs %v, want %v", got, wantTTLs)
		}

		// ship → FLUSHALL → restore --before-command FLUSHALL
		c := src.Client()
		far := time.Now().Add(100 * time.Hour).UnixMilli()
		cmds := [][]any{{"SET", "after", "1"}, {"HSET", "h:after", "a", "1", "b", "2", "c", "3"}}
		if b.HashFieldTTL() {
			cmds = append(cmds,
				[]any{"HPEXPIREAT", "h:after", far, "FIELDS", 1, "a"},
				[]any{"HEXPIRE", "h:after", 360000, "FIELDS", 1, "b"},
				[]any{"HPERSIST", "db0:hfe:small", "FIELDS", 1, "f0"})
		}
		for _, cmd := range cmds {
			if err := c.Do(ctx, cmd...).Err(); err != nil {
				t.Fatalf("%v: %v", cmd, err)
			}
		}
		before, beforeTTLs := src.Digest(ctx), redistest.FieldTTLs(t, src)
		if err := c.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Do(ctx, "WAIT", 1, 20000).Int(); err != nil || n != 1 {
			t.Fatalf("WAIT = %d, %v", n, err)
		}
		stopShip()
		pit := redistest.StartBin(t, b)
		if code, out, errs := runCLI(t, "restore", "--repo", repo, "--name", "s", "--before-command", "FLUSHALL", "--to-redis", pit.URL()); code != ExitOK {
			t.Fatalf("restore --before-command FLUSHALL: exit %d\n%s%s", code, out, errs)
		}
		if got := pit.Digest(ctx); got != before {
			t.Fatalf("restore --before-command FLUSHALL: digest %s, want %s", got, before)
		}
		if got := redistest.FieldTTLs(t, pit); !maps.EqualFunc(got, beforeTTLs, maps.Equal) {
			t.Fatalf("restore --before-command FLUSHALL: HPEXPIRETIMEs %v, want %v", got, beforeTTLs)
		}

		// drill
		code, out, errs = runCLI(t, "drill", "--repo", repo, "--name", "snap", "--snapshot", snap.ID, "--json")
		if d := decodeDrill(t, out); code != ExitOK || !d.OK || !d.DigestMatch {
			t.Fatalf("drill: exit %d %+v\n%s", code, d, errs)
		}

		// migrate the restored copy to a fresh server
		mig := redistest.StartBin(t, b)
		if code, _, errs := runCLI(t, "migrate", "--from", dst.URL(), "--to", mig.URL()); code != ExitOK {
			t.Fatalf("migrate: exit %d\n%s", code, errs)
		}
		if got := mig.Digest(ctx); got != want {
			t.Fatalf("migrate: digest %s, want %s", got, want)
		}
	})
}

// shipInBackground runs `redback ship` from src into repo until the
// returned stop is called (at the latest when the test ends), after its
// first generation appeared.
func shipInBackground(t *testing.T, src *redistest.Server, repo string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"ship", "--source", src.URL(), "--repo", repo, "--name", "s", "--interval", "100ms", "--ack", "durable"},
			Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != ExitOK {
			t.Errorf("ship: exit %d\n%s", code, errb.String())
		}
	}
	t.Cleanup(stop)
	b := sourceView(t, repo, "s")
	for i := 0; i < 1500; i++ {
		gens, _ := catalog.ListGenerations(ctx, b)
		if len(gens) == 1 {
			return stop
		}
		select {
		case code := <-done:
			stopped = true
			t.Fatalf("ship exited %d before its first generation\n%s", code, errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("ship: no generation after 30 s\n%s", filepath.Base(repo))
	return stop
}

// TestServers_Cross restores one server's RDB into another family's server
// (Redis 8 → Valkey 9 and back, and each into the oldest server of the
// set): every key arrives, hash-field TTLs are equal where the target has
// them, and where it has not their loss is reported, never silent.
func TestServers_Cross(t *testing.T) {
	r8, ok1 := redistest.Find(t, "redis", 7, 4)
	v9, ok2 := redistest.Find(t, "valkey", 9, 0)
	if !ok1 || !ok2 {
		t.Skip("REDBACK_TEST_SERVERS names no Redis >= 7.4 and Valkey >= 9.0 pair")
	}
	old := redistest.Default(t)
	for _, pair := range [][2]redistest.Bin{{r8, v9}, {v9, r8}, {r8, old}, {v9, old}} {
		from, to := pair[0], pair[1]
		t.Run(from.Name()+"->"+to.Name(), func(t *testing.T) {
			ctx := t.Context()
			src := redistest.StartBin(t, from)
			redistest.PopulateAll(t, src, 40)
			if err := src.Client().Save(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			dst := redistest.StartBin(t, to)
			code, out, errs := runCLI(t, "restore", "--from-rdb", filepath.Join(src.Dir, "dump.rdb"), "--to-redis", dst.URL())
			if code != ExitOK {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
			for db := range 4 {
				sc := src.Client().Conn()
				dc := dst.Client().Conn()
				sc.Select(ctx, db)
				dc.Select(ctx, db)
				n1, _ := sc.DBSize(ctx).Result()
				n2, _ := dc.DBSize(ctx).Result()
				sc.Close()
				dc.Close()
				if n1 != n2 {
					t.Errorf("db %d: %d keys on the target, %d on the source", db, n2, n1)
				}
			}
			want := redistest.FieldTTLs(t, src)
			if to.HashFieldTTL() {
				if got := redistest.FieldTTLs(t, dst); !maps.EqualFunc(got, want, maps.Equal) {
					t.Errorf("HPEXPIRETIMEs %v, want %v", got, want)
				}
			} else if len(want) > 0 && !strings.Contains(errs, "hash field TTLs dropped") {
				t.Errorf("field TTLs lost without a word:\n%s", errs)
			}
			if !from.HashFieldTTL() || to.Valkey() == from.Valkey() {
				return
			}
			if !strings.Contains(out, "converted") {
				t.Errorf("conversions not counted:\n%s", out)
			}
		})
	}
}
