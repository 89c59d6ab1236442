package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/redistest"
)

// TestClusterReshard moves a slot with keys from one primary to another
// (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) while every
// shard is shipped. While the slot migrates a set is refused (exit 1,
// naming the slot) and one given time waits for the end and records it;
// after the move a new slot map is recorded, and a restore of the shipped
// shards before a FLUSHALL of every primary is union-digest-equal to the
// cluster before it: every key once, in its new shard.
func TestClusterReshard(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3, 0)
	redistest.PopulateCluster(t, c, 300)
	dir := filepath.Join(t.TempDir(), "repo")
	repo := "file://" + dir
	r := startShipVia(t, c.Nodes[0], c.URL(), repo, "--name", "cache", "--interval", "100ms")
	cc := c.Client()
	defer cc.Close()
	for i := range 50 {
		if err := cc.Set(ctx, fmt.Sprintf("{m}:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	slot, err := cc.ClusterKeySlot(ctx, "{m}").Result()
	if err != nil {
		t.Fatal(err)
	}
	// The slot's owner and another primary, by their ids.
	var src, dst *redistest.Server
	ids := map[*redistest.Server]string{}
	for _, p := range c.Primaries() {
		id, err := p.Client().Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		ids[p] = id
		n, err := p.Client().Do(ctx, "CLUSTER", "COUNTKEYSINSLOT", slot).Int()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			src = p
		}
	}
	for _, p := range c.Primaries() {
		if p != src {
			dst = p
			break
		}
	}
	do := func(s *redistest.Server, args ...any) {
		t.Helper()
		if err := s.Client().Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v on %s: %v", args, s.Addr(), err)
		}
	}
	do(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
	do(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])

	// A set now is refused, naming the slot.
	// (Sets go to a repository of their own: ship holds the shards' leases.)
	setRepo := "file://" + filepath.Join(t.TempDir(), "sets")
	code, out, errs := runCLI(t, "snapshot", "--source", c.URL(), "--repo", setRepo, "--name", "cache", "--migration-wait", "1s")
	if code != 1 || !strings.Contains(errs, fmt.Sprintf("slot %d migrating", slot)) {
		t.Fatalf("snapshot while slot %d migrates: exit %d\n%s%s", slot, code, out, errs)
	}
	// One that may wait sees the move end and records it.
	moved := make(chan error, 1)
	waiting := &signalWriter{word: "waiting for the resharding to end", seen: make(chan struct{})}
	go func() {
		select { // the snapshot saw the migration first
		case <-waiting.seen:
		case <-time.After(60 * time.Second):
			moved <- fmt.Errorf("the snapshot did not say it waits in 60 s:\n%s", waiting.String())
			return
		}
		keys, err := src.Client().Do(ctx, "CLUSTER", "GETKEYSINSLOT", slot, 1000).StringSlice()
		if err == nil {
			args := []any{"MIGRATE", "127.0.0.1", dst.Port, "", 0, 10000, "KEYS"}
			for _, k := range keys {
				args = append(args, k)
			}
			err = src.Client().Do(ctx, args...).Err()
		}
		for _, n := range append([]*redistest.Server{dst, src}, c.Primaries()...) {
			if err == nil {
				err = n.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst]).Err()
			}
		}
		moved <- err
	}()
	var sout strings.Builder
	code = Run(ctx, []string{"snapshot", "--source", c.URL(), "--repo", setRepo, "--name", "cache", "--migration-wait", "60s", "--json"},
		Stdio{In: strings.NewReader(""), Out: &sout, Err: waiting})
	if err := <-moved; err != nil {
		t.Fatal(err)
	}
	var set catalog.Set
	if code != 0 || json.Unmarshal([]byte(sout.String()), &set) != nil {
		t.Fatalf("snapshot across the move: exit %d\n%s%s", code, sout.String(), waiting.String())
	}
	if set.Migration == nil || set.Migration.Outcome != "waited" || len(set.Migration.Seen) == 0 {
		t.Fatalf("the set does not record the wait: %+v", set.Migration)
	}
	c.WaitOK()
	cc.ReloadState(ctx)
	for i := range 50 {
		if err := cc.Set(ctx, fmt.Sprintf("{m}:%d", i), -i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := clusterUnion(t, c)
	// The new slot map is recorded.
	for i := 0; ; i++ {
		maps, _ := os.ReadDir(filepath.Join(dir, "sets", "cache", "slotmaps"))
		if len(maps) >= 2 {
			break
		}
		if i == 300 {
			t.Fatalf("no second slot map in 30 s (%d); ship stderr:\n%s", len(maps), r.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range c.Primaries() {
		do(p, "FLUSHALL")
	}
	for _, name := range []string{catalog.ShardSourceName("cache", 0), catalog.ShardSourceName("cache", 5461), catalog.ShardSourceName("cache", 10923)} {
		for i := 0; ; i++ {
			code, out, _ := runCLI(t, "log", "--repo", repo, "--name", name, "--command", "FLUSHALL")
			if code == 0 && strings.Contains(strings.ToUpper(out), "FLUSHALL") {
				break
			}
			if i == 300 {
				t.Fatalf("%s: no FLUSHALL in the log in 30 s; ship stderr:\n%s", name, r.stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("ship exit %d:\n%s", code, r.stderr.String())
	}
	to := redistest.StartCluster(t, 2, 0)
	code, out, errs = runCLI(t, "restore", "--repo", repo, "--name", "cache", "--before-command", "FLUSHALL", "--to-redis", to.URL())
	if code != 0 {
		t.Fatalf("restore --before-command FLUSHALL: exit %d\n%s%s", code, out, errs)
	}
	if got := clusterUnion(t, to); got != want {
		t.Fatalf("restored union digest %s, source before FLUSHALL %s\n%s", got, want, out)
	}
}

// signalWriter collects what is written and closes seen once word appears.
type signalWriter struct {
	word string
	seen chan struct{}
	mu   sync.Mutex
	b    strings.Builder
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), w.word) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
