package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/redistest"
)

// TestPrune_WhileShipping: a standalone `redback ship --ack durable` holds
// its source's lease, so prune (and snapshot) of that source are refused
// while it runs, naming the holder. Every prune variant, --keep-pitr 0 with
// one hourly snapshot first (it used to delete the base of the generation a
// standalone shipper wrote on), then runs in a pause of the shipper (while
// the source takes writes) with an older generation and plain snapshots
// newer than the live, not ended, base. After each prune the shipper
// resumes its generation and a write is acknowledged by WAIT; at the end
// every recorded point of the live generation, those acknowledged after a
// prune included, restores with its DEBUG DIGEST.
func TestPrune_WhileShipping(t *testing.T) {
	src := redistest.Start(t)
	repo := "file://" + filepath.Join(t.TempDir(), "repo")
	bg := context.Background()
	ship := startShip(t, src, repo, "--interval", "100ms", "--ack", "durable")

	// An older generation with data, then a restart: the live generation.
	ship.waitDurable()
	if err := src.Client().Do(bg, "DEBUG", "POPULATE", "500", "old").Err(); err != nil {
		t.Fatal(err)
	}
	old := ship.waitDurable()
	src.Restart()
	live := ship.waitDurable()
	if live == old {
		t.Fatalf("no new generation after the restart: %s", live)
	}

	type point struct {
		name   string
		at     time.Time
		digest string
	}
	var points []point
	// ack writes one key and waits until WAIT says it is durable, then
	// records the moment and the digest.
	ack := func(name string) {
		t.Helper()
		c := src.Client()
		if err := c.Set(bg, name, strings.Repeat("v", 100), 0).Err(); err != nil {
			t.Fatal(err)
		}
		n, err := c.Do(bg, "WAIT", 1, 10000).Int()
		if err != nil || n != 1 {
			t.Fatalf("WAIT after %s: %d %v; ship stderr:\n%s", name, n, err, ship.stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
		points = append(points, point{name, time.Now(), src.Digest(bg)})
		time.Sleep(5 * time.Millisecond)
	}
	ack("before")
	for _, args := range [][]string{{"snapshot", "--source", src.URL(), "--repo", repo}, {"prune", "--repo", repo}} {
		if code, out, errs := runCLI(t, args...); code != ExitFailure || !strings.Contains(errs, "is leased by") {
			t.Fatalf("%s while ship runs: exit %d, want 1 naming the lease holder\n%s%s", args[0], code, out, errs)
		}
	}
	// pause stops the shipper, runs f, and starts the shipper again.
	pause := func(f func()) {
		t.Helper()
		if code := ship.stop(); code != ExitOK {
			t.Fatalf("ship exit %d: %s", code, ship.stderr.String())
		}
		f()
		ship = startShip(t, src, repo, "--interval", "100ms", "--ack", "durable")
	}
	pause(func() {
		if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
			t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
		}
	})
	ack("after-snapshot")

	zero := []string{"--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0"}
	variants := [][]string{
		append([]string{"--keep-pitr", "0", "--keep-hourly", "1"}, zero...),
		append([]string{"--keep-pitr", "0", "--keep-hourly", "0"}, zero...),
		append([]string{"--keep-pitr", "1ms", "--keep-hourly", "0"}, zero...),
		{"--keep-pitr", "0", "--keep-within", "1s"},
		{},
	}
	for i, v := range variants {
		// Writes go on while prune runs.
		stop := make(chan struct{})
		writer := make(chan error, 1)
		go func() {
			var err error
			for j := 0; j < 10000 && err == nil; j++ {
				select {
				case <-stop:
					writer <- nil
					return
				default:
				}
				err = src.Client().Incr(bg, "counter").Err()
			}
			writer <- err
		}()
		var code int
		var out, errs string
		pause(func() { code, out, errs = runCLI(t, append([]string{"prune", "--repo", repo, "--json"}, v...)...) })
		close(stop)
		if err := <-writer; err != nil {
			t.Fatal(err)
		}
		var pr struct {
			DeletedGenerations []string          `json:"deleted_generations"`
			KeptGenerations    map[string]string `json:"kept_generations"`
		}
		if err := json.Unmarshal([]byte(out), &pr); code != ExitOK || err != nil {
			t.Fatalf("prune %v: exit %d %v\n%s%s", v, code, err, out, errs)
		}
		if pr.KeptGenerations[live] == "" {
			t.Fatalf("prune %v did not keep the live generation %s:\n%s", v, live, out)
		}
		for _, w := range ship.list().Generations {
			if w.Problem != "" {
				t.Fatalf("after prune %v: %s", v, w.String())
			}
		}
		ack(fmt.Sprintf("after-prune-%d", i))
	}

	// A window ends at its last command: one more durable write so it
	// reaches past the last recorded point.
	if err := src.Client().Set(bg, "tick", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	ship.waitDurable()
	for _, p := range points {
		dst := redistest.Start(t)
		code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", p.at.UTC().Format(time.RFC3339Nano), "--to-redis", dst.URL())
		if code != ExitOK {
			t.Fatalf("restore --at %s (%s): exit %d\n%s%s", p.at.UTC().Format(time.RFC3339Nano), p.name, code, out, errs)
		}
		if d := dst.Digest(bg); d != p.digest {
			t.Fatalf("restore --at %s (%s): digest %s, want %s\n%s", p.at.UTC().Format(time.RFC3339Nano), p.name, d, p.digest, out)
		}
		dst.Stop()
	}
	if code := ship.stop(); code != ExitOK {
		t.Fatalf("ship exit %d: %s", code, ship.stderr.String())
	}
}
