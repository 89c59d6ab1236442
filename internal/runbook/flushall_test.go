package runbook

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

	"github.com/redis/go-redis/v9"
)

// TestFlushall stages a FLUSHALL under write load with shipping on and runs
// flushall.md along its paths. The digest just before the FLUSHALL is read
// in the same transaction as the FLUSHALL.
//
// Expected end states: side and direct (--conflict skip) give the state
// before the flush overlaid, key by key, with production's keys at the
// time of the restore; surgical gives the state before the flush with every
// later logged command replayed. Both are built independently on a scratch
// server with go-redis (DUMP/RESTORE, and a replay of `redback log --json`).
func TestFlushall(t *testing.T) {
	rb := load(t, "flushall.md")
	for _, path := range []string{"side", "direct", "surgical"} {
		t.Run(path, func(t *testing.T) {
			need(t, "ship", "--ack")
			need(t, "log", "--command")
			need(t, "restore", "--before-command")
			need(t, "restore", "--skip-command-at")
			need(t, "migrate", "--conflict")
			s := newServer(t, "appendonly", "no")
			s.start(t)
			repo := "file://" + filepath.Join(t.TempDir(), "repo")
			fill(t, s, "base", 20000)
			ship(t, s, repo)
			preFlush := flushUnderLoad(t, s)
			s.durable(t, repo)

			// expected end state, on a scratch server
			exp := newServer(t, "appendonly", "no")
			exp.start(t)
			redback(t, "restore", "--repo", repo, "--before-command", "FLUSHALL", "--to-redis", exp.url())
			if got := exp.digest(t); got != preFlush {
				t.Fatalf("restore --before-command FLUSHALL: DEBUG DIGEST %s, want %s (read with the FLUSHALL)", got, preFlush)
			}
			keys := exp.keys(t)
			if path == "surgical" {
				replayAfterFlush(t, repo, exp)
			} else {
				overlay(t, s, exp)
			}
			want := exp.digest(t)

			side := filepath.Join(t.TempDir(), "side")
			t.Cleanup(func() { killPidFile(filepath.Join(side, "redis.pid")) })
			vars := map[string]string{
				"{{PORT}}": itoa(s.Port), "{{REPO}}": repo, "{{APP_USER}}": "default",
				"{{SIDE_PORT}}": itoa(freePort(t)), "{{SIDE_DIR}}": side,
			}
			rto := run(t, "flushall.md", rb, path, vars)
			got := s.digest(t)
			if got != want {
				t.Fatalf("after the runbook (path %s): DEBUG DIGEST %s, want %s", path, got, want)
			}
			report(t, "flushall/"+path, rto, keys)
		})
	}
}

// flushUnderLoad writes 2,000 commands of several kinds from one client
// while another runs MULTI; DEBUG DIGEST; FLUSHALL; EXEC halfway through,
// and returns that digest.
func flushUnderLoad(t *testing.T, s *server) string {
	t.Helper()
	ctx := t.Context()
	c := s.client(t)
	half := make(chan struct{})
	var wg sync.WaitGroup
	var loadErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 40 {
			if i == 20 {
				close(half)
			}
			p := c.Pipeline()
			for j := range 50 {
				n := i*50 + j
				k := fmt.Sprintf("load:%d", n%300)
				switch n % 5 {
				case 0:
					p.Set(ctx, k, n, 0)
				case 1:
					p.Incr(ctx, "load:counter")
				case 2:
					p.HSet(ctx, "load:hash:"+fmt.Sprint(n%7), fmt.Sprint(n), n)
				case 3:
					p.RPush(ctx, "load:list", n)
				case 4:
					p.Set(ctx, fmt.Sprintf("base:0:%d", n), "overwritten", time.Hour)
				}
			}
			if _, err := p.Exec(ctx); err != nil {
				loadErr = err
				return
			}
		}
	}()
	<-half
	tx := s.client(t).TxPipeline()
	dg := tx.Do(ctx, "DEBUG", "DIGEST")
	tx.FlushAll(ctx)
	if _, err := tx.Exec(ctx); err != nil {
		t.Fatalf("MULTI DEBUG DIGEST FLUSHALL EXEC: %v", err)
	}
	wg.Wait()
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	d, err := dg.Text()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// overlay copies every key of src over dst (DUMP, PTTL, RESTORE REPLACE).
func overlay(t *testing.T, src, dst *server) {
	t.Helper()
	ctx := t.Context()
	for db := range 16 {
		sc := redis.NewClient(&redis.Options{Addr: src.addr(), DB: db, DisableIdentity: true})
		dc := redis.NewClient(&redis.Options{Addr: dst.addr(), DB: db, DisableIdentity: true})
		iter := sc.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			v, err := sc.Dump(ctx, k).Result()
			if err != nil {
				t.Fatalf("DUMP %s: %v", k, err)
			}
			ttl, _ := sc.PTTL(ctx, k).Result()
			if ttl < 0 {
				ttl = 0
			}
			if err := dc.RestoreReplace(ctx, k, ttl, v).Err(); err != nil {
				t.Fatalf("RESTORE %s: %v", k, err)
			}
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		sc.Close()
		dc.Close()
	}
}

// replayAfterFlush replays, on dst, every logged command after the first
// FLUSHALL, as `redback log --json` lists them.
func replayAfterFlush(t *testing.T, repo string, dst *server) {
	t.Helper()
	ctx := context.Background()
	out := redback(t, "log", "--repo", repo, "--json", "--max-arg", "1048576")
	type entry struct {
		DB   int      `json:"db"`
		Name string   `json:"name"`
		Args []string `json:"args"`
		Tx   bool     `json:"in_transaction"`
	}
	clients := map[int]*redis.Client{}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	after, n := false, 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("redback log --json: %v: %s", err, line)
		}
		if !after {
			after = strings.EqualFold(e.Name, "FLUSHALL")
			continue
		}
		if strings.EqualFold(e.Name, "MULTI") || strings.EqualFold(e.Name, "EXEC") {
			continue
		}
		c := clients[e.DB]
		if c == nil {
			c = redis.NewClient(&redis.Options{Addr: dst.addr(), DB: e.DB, DisableIdentity: true})
			clients[e.DB] = c
		}
		args := []any{e.Name}
		for _, a := range e.Args {
			args = append(args, a)
		}
		if err := c.Do(ctx, args...).Err(); err != nil && err != redis.Nil {
			t.Fatalf("replay %v: %v", args, err)
		}
		n++
	}
	if !after || n == 0 {
		t.Fatalf("replay: FLUSHALL found %v, %d commands after it", after, n)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	s := newServer(t)
	_ = os.Remove(s.Conf)
	return s.Port
}
