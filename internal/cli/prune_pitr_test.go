package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/redistest"
)

// pitrShipLog is a bytes.Buffer safe to read while a running command
// writes to it.
type pitrShipLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *pitrShipLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *pitrShipLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pitrPoint is a recorded moment of the source: every write before it was
// durable in the repository when it was taken, and none came before
// quietEnd, so any time in [at, quietEnd) restores to digest.
type pitrPoint struct {
	name     string
	gen      int // 0-based index of the generation (source incarnation)
	at       time.Time
	quietEnd time.Time
	digest   string
}

// TestPrune_KeepsPITRWindowRestorable builds three log generations with the
// real shipper (`redback ship`; each restart of the persistence-less
// source means a new replid, a full resync and a new generation), records
// (time, DEBUG DIGEST) pairs at quiet moments whose writes are durable, and
// takes plain snapshots along the way. It then prunes with every GFS count
// at 0 and a --keep-pitr window that starts inside the second generation:
// the first generation (its log and its base) must go, and every recorded
// point of the kept generations, plus seeded random times inside their
// quiet gaps, must restore (`redback restore --at`) into a fresh server
// with the recorded digest. A time older than the window must fail
// cleanly (exit 1, naming the windows) although it restored fine before
// the prune.
func TestPrune_KeepsPITRWindowRestorable(t *testing.T) {
	if code, out, errs := runCLI(t, "prune", "--help"); code != ExitOK {
		t.Fatalf("prune --help: exit %d\n%s%s", code, out, errs)
	} else {
		for _, f := range []string{"--keep-hourly", "--keep-daily", "--keep-weekly", "--keep-monthly", "--keep-within", "--keep-pitr", "--dry-run", "--json"} {
			if !strings.Contains(out+errs, f) {
				t.Fatalf("prune --help does not list %s:\n%s%s", f, out, errs)
			}
		}
	}

	src := redistest.Start(t)
	repo := "file://" + filepath.Join(t.TempDir(), "repo")
	bg := context.Background()

	ship := startShip(t, src, repo, "--interval", "200ms")
	list := func() listOutput { t.Helper(); return ship.list() }
	waitDurable := func() string { t.Helper(); return ship.waitDurable() }

	rng := rand.New(rand.NewSource(20261125))
	var points []pitrPoint
	var genIDs []string
	// quiet records a point once the writes so far are durable, then keeps
	// the source idle for a while (a gap for random restore times).
	quiet := func(gen int, name string) {
		t.Helper()
		if id := waitDurable(); id != genIDs[gen] {
			t.Fatalf("point %s: durable in generation %s, want %s", name, id, genIDs[gen])
		}
		time.Sleep(2 * time.Millisecond)
		p := pitrPoint{name: name, gen: gen, at: time.Now(), digest: src.Digest(bg)}
		time.Sleep(60 * time.Millisecond)
		p.quietEnd = time.Now()
		points = append(points, p)
	}
	// write runs a bounded batch of mixed writes in dbs 0 and 2.
	write := func(gen, round int) {
		t.Helper()
		db2 := redis.NewClient(&redis.Options{Addr: src.Addr(), DB: 2, DisableIdentity: true})
		defer db2.Close()
		for _, c := range []*redis.Client{src.Client(), db2} {
			p := c.Pipeline()
			for i := 0; i < 120; i++ {
				k := rng.Intn(30)
				switch rng.Intn(6) {
				case 0, 1:
					p.Do(bg, "SET", fmt.Sprintf("s:%d", k), fmt.Sprintf("g%d-r%d-%d", gen, round, rng.Int63()))
				case 2:
					p.Do(bg, "HINCRBY", fmt.Sprintf("h:%d", k%7), fmt.Sprintf("f%d", k), rng.Intn(100)-50)
				case 3:
					p.Do(bg, "RPUSH", fmt.Sprintf("l:%d", k%5), rng.Int63())
				case 4:
					p.Do(bg, "ZADD", fmt.Sprintf("z:%d", k%4), rng.Float64()*100, fmt.Sprintf("m%d", k))
				case 5:
					p.Do(bg, "DEL", fmt.Sprintf("s:%d", k), fmt.Sprintf("l:%d", k%5))
				}
			}
			if _, err := p.Exec(bg); err != nil {
				t.Fatalf("writes of generation %d round %d: %v", gen, round, err)
			}
		}
	}
	// ship holds the source's lease: the plain snapshots of the same
	// source are taken while it is stopped (a restarted ship resumes its
	// generation).
	snapshot := func(name string) {
		t.Helper()
		if code := ship.stop(); code != ExitOK {
			t.Fatalf("ship exit %d: %s", code, ship.stderr.String())
		}
		if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo); code != ExitOK {
			t.Fatalf("snapshot %s: exit %d\n%s%s", name, code, out, errs)
		}
		ship = startShip(t, src, repo, "--interval", "200ms")
	}

	const gens = 3
	var gen2Seen time.Time
	for g := 0; g < gens; g++ {
		if g > 0 {
			src.Restart() // no persistence: empty, new replid; the shipper must resync fully
		}
		genIDs = append(genIDs, waitDurable())
		if slices.Contains(genIDs[:g], genIDs[g]) {
			t.Fatalf("generation %d reuses generation %s", g, genIDs[g])
		}
		if g == 1 {
			gen2Seen = time.Now()
		}
		quiet(g, fmt.Sprintf("gen%d-empty", g))
		for r := 1; r <= 2; r++ {
			write(g, r)
			quiet(g, fmt.Sprintf("gen%d-round%d", g, r))
			if r == 1 && g != 1 {
				snapshot(fmt.Sprintf("gen%d", g))
			}
		}
		// One more write so the generation's log reaches past its last
		// recorded point (a window ends at its last command).
		if err := src.Client().Set(bg, "tick", g, 0).Err(); err != nil {
			t.Fatal(err)
		}
		waitDurable()
	}
	if code := ship.stop(); code != ExitOK {
		t.Fatalf("ship exit %d: %s", code, ship.stderr.String())
	}

	before := list()
	if len(before.Generations) != gens {
		t.Fatalf("%d generations before prune, want %d: %+v", len(before.Generations), gens, before.Generations)
	}
	base := map[string]string{}
	for i, w := range before.Generations {
		base[w.Generation] = w.Base
		if i < gens-1 && !w.Ended {
			t.Fatalf("generation %s not ended after the restart: %+v", w.Generation, w)
		}
	}

	restoreAt := func(at time.Time) (int, string, string, string) {
		t.Helper()
		dst := redistest.Start(t)
		defer dst.Stop()
		code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", at.UTC().Format(time.RFC3339Nano), "--to-redis", dst.URL())
		d := ""
		if code == ExitOK {
			d = dst.Digest(bg)
		}
		return code, out, errs, d
	}

	// An old point restores before the prune (so its failure later is the
	// prune's doing, not a bad point).
	var old pitrPoint
	for _, p := range points {
		if p.gen == 0 && p.name == "gen0-round1" {
			old = p
		}
	}
	if code, out, errs, d := restoreAt(old.at); code != ExitOK || d != old.digest {
		t.Fatalf("before prune, restore --at %s (%s): exit %d digest %s want %s\n%s%s", old.at.Format(time.RFC3339Nano), old.name, code, d, old.digest, out, errs)
	}

	// The window starts at the second generation's first round: the first
	// generation lies wholly before it; part of the second and all of the
	// third lie inside.
	var windowStart time.Time
	for _, p := range points {
		if p.name == "gen1-round1" {
			windowStart = p.at
		}
	}
	if !windowStart.After(gen2Seen) {
		t.Fatalf("window start %s not after the second generation appeared (%s)", windowStart, gen2Seen)
	}
	window := time.Since(windowStart).Truncate(time.Millisecond) + time.Millisecond
	code, out, errs := runCLI(t, "prune", "--repo", repo, "--keep-hourly", "0", "--keep-daily", "0", "--keep-weekly", "0",
		"--keep-monthly", "0", "--keep-pitr", fmt.Sprintf("%dms", window.Milliseconds()), "--json")
	var pr struct {
		Deleted            []string          `json:"deleted"`
		DeletedGenerations []string          `json:"deleted_generations"`
		KeptGenerations    map[string]string `json:"kept_generations"`
		Errors             []string          `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &pr); code != ExitOK || err != nil || len(pr.Errors) != 0 {
		t.Fatalf("prune: exit %d %v\n%s%s", code, err, out, errs)
	}
	if !slices.Equal(pr.DeletedGenerations, genIDs[:1]) {
		t.Fatalf("prune deleted generations %v, want exactly the first %v\n%s", pr.DeletedGenerations, genIDs[:1], out)
	}
	if !slices.Contains(pr.Deleted, base[genIDs[0]]) {
		t.Fatalf("prune kept the first generation's base %s: deleted %v\n%s", base[genIDs[0]], pr.Deleted, out)
	}
	for _, id := range genIDs[1:] {
		if _, ok := pr.KeptGenerations[id]; !ok || slices.Contains(pr.Deleted, base[id]) {
			t.Fatalf("prune did not keep generation %s with its base %s\n%s", id, base[id], out)
		}
	}
	after := list()
	var left []string
	for _, w := range after.Generations {
		if w.Problem != "" || len(w.Gaps) != 0 {
			t.Fatalf("generation %s damaged by prune: %+v", w.Generation, w)
		}
		left = append(left, w.Generation)
	}
	if slices.Sort(left); !slices.Equal(left, slices.Sorted(slices.Values(genIDs[1:]))) {
		t.Fatalf("generations after prune %v, want %v", left, genIDs[1:])
	}
	if len(after.Snapshots) >= len(before.Snapshots) {
		t.Fatalf("no snapshot pruned: %d before, %d after", len(before.Snapshots), len(after.Snapshots))
	}

	// Every recorded point of the kept generations, then seeded random
	// times inside their quiet gaps (two per generation, at or after the
	// window's start).
	type probe struct {
		name   string
		at     time.Time
		digest string
	}
	var probes []probe
	inside := 0
	for _, p := range points {
		if p.gen == 0 {
			continue
		}
		probes = append(probes, probe{p.name, p.at, p.digest})
		if !p.at.Before(windowStart) {
			inside++
		}
	}
	for g := 1; g < gens; g++ {
		var gaps []pitrPoint
		for _, p := range points {
			if p.gen == g && !p.at.Before(windowStart) {
				gaps = append(gaps, p)
			}
		}
		for i := 0; i < 2 && len(gaps) > 0; i++ {
			p := gaps[rng.Intn(len(gaps))]
			span := p.quietEnd.Add(-time.Millisecond).Sub(p.at)
			if span <= 0 {
				continue
			}
			at := p.at.Add(time.Duration(rng.Int63n(int64(span))))
			probes = append(probes, probe{fmt.Sprintf("random in the gap after %s", p.name), at, p.digest})
			inside++
		}
	}
	if inside < 6 {
		t.Fatalf("only %d probes inside the window", inside)
	}
	for _, pb := range probes {
		code, out, errs, d := restoreAt(pb.at)
		if code != ExitOK {
			t.Fatalf("restore --at %s (%s): exit %d\n%s%s", pb.at.UTC().Format(time.RFC3339Nano), pb.name, code, out, errs)
		}
		if d != pb.digest {
			t.Fatalf("restore --at %s (%s): digest %s, recorded %s\n%s", pb.at.UTC().Format(time.RFC3339Nano), pb.name, d, pb.digest, out)
		}
	}

	// Older than the window: refused, naming what can be restored.
	code, out, errs, _ = restoreAt(old.at)
	if code != ExitFailure || !strings.Contains(errs, "outside every recoverable window") ||
		!strings.Contains(errs, genIDs[1]) || !strings.Contains(errs, genIDs[2]) || strings.Contains(errs, genIDs[0]) {
		t.Fatalf("restore --at %s (pruned %s): exit %d, want %d naming the windows of %v\n%s%s",
			old.at.UTC().Format(time.RFC3339Nano), old.name, code, ExitFailure, genIDs[1:], out, errs)
	}
}
