package ship

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/pitr"
	"redback/internal/redistest"
	"redback/internal/storage/file"
	"redback/internal/storage/mem"
)

func TestShipper_ReplayMatchesDigest(t *testing.T) {
	src := startSource(t)
	redistest.Populate(t, src, 200)
	b := mem.New()
	s := newShipper(t, src, b)
	r := run(t, s)
	load(t, src, 1, 3000)
	caughtUp(t, src, s)
	r.stop(t)
	st := s.Stats()
	if st.DurableOffset != st.PrimaryOffset || st.Generations != 1 || st.SegmentsUploaded == 0 {
		t.Errorf("stats after stop: %+v", st)
	}
	gens := checkRepo(t, b, src.Digest(context.Background()))
	if len(gens) != 1 || gens[0].Ended {
		t.Fatalf("want one open generation, got %+v", gens)
	}
	w, err := pitr.Windows(context.Background(), b)
	if err != nil || len(w) != 1 || w[0].ToOffset != st.DurableOffset || len(w[0].Gaps) != 0 {
		t.Errorf("Windows = %+v, %v", w, err)
	}
}

func TestShipper_ConnectionKilled(t *testing.T) {
	src := startSource(t)
	b := mem.New()
	s := newShipper(t, src, b)
	r := run(t, s)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		load(t, src, 2, 6000)
	}()
	for i := 0; i < 5; i++ {
		waitFor(t, 30*time.Second, "connected", func() bool { return s.Stats().Connected })
		time.Sleep(150 * time.Millisecond)
		if err := src.Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	waitFor(t, 30*time.Second, "reconnect", func() bool { return s.Stats().Connected })
	caughtUp(t, src, s)
	r.stop(t)
	if st := s.Stats(); st.Reconnects < 1 || st.Generations != 1 {
		t.Errorf("stats: %+v", st)
	}
	gens := checkRepo(t, b, src.Digest(context.Background()))
	if len(gens) != 1 {
		t.Fatalf("want one generation (every reconnect continued), got %d", len(gens))
	}
}

func TestShipper_Restarts(t *testing.T) {
	src := startSource(t)
	b := mem.New()
	var wg sync.WaitGroup
	wg.Add(1)
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		for i := uint64(0); ; i++ {
			select {
			case <-done:
				return
			default:
			}
			load(t, src, 10+i, 200)
		}
	}()
	rng := rand.New(rand.NewPCG(3, 3))
	var s *Shipper
	for i := 0; i < 8; i++ {
		if i%2 == 0 { // odd rounds run the same Shipper again, as the agent does
			s = newShipper(t, src, b)
		}
		r := run(t, s)
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		r.stop(t)
	}
	close(done)
	wg.Wait()
	s = newShipper(t, src, b)
	r := run(t, s)
	caughtUp(t, src, s)
	r.stop(t)
	gens := checkRepo(t, b, src.Digest(context.Background()))
	if len(gens) != 1 {
		t.Fatalf("want one generation across restarts, got %d", len(gens))
	}
}

func TestShipper_PrimaryRestartStartsNewGeneration(t *testing.T) {
	src := startSource(t)
	b := mem.New()
	s := newShipper(t, src, b)
	r := run(t, s)
	load(t, src, 4, 500)
	caughtUp(t, src, s)
	before := src.Digest(context.Background())
	waitFor(t, 30*time.Second, "durable", func() bool { st := s.Stats(); return st.DurableOffset == st.PrimaryOffset })
	src.Restart() // no persistence: empty, new replid
	waitFor(t, 30*time.Second, "a second generation", func() bool { return s.Stats().Generations >= 2 })
	load(t, src, 5, 500)
	caughtUp(t, src, s)
	r.stop(t)
	gens := checkRepo(t, b, src.Digest(context.Background()))
	if len(gens) != 2 || !gens[0].Ended || gens[1].Ended {
		t.Fatalf("want an ended and an open generation, got %+v", gens)
	}
	if !strings.Contains(gens[0].EndReason, "full resync") {
		t.Errorf("end reason %q", gens[0].EndReason)
	}
	if got := replay(t, b, gens[0]); got != before {
		t.Errorf("old generation replays to %s, source had %s before the restart", got, before)
	}
}

func TestShipper_StorageOutage(t *testing.T) {
	// With a large backlog the link resumes (+CONTINUE) after the spool
	// drained: one generation, no gap. With the smallest backlog the primary
	// answers with a full resync: the old generation ends at its durable
	// offset and a new one starts.
	for _, tc := range []struct {
		name    string
		backlog string
		gens    int
	}{{"continue", "64mb", 1}, {"full resync", "16kb", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			src := redistest.Start(t, "--repl-backlog-size", tc.backlog)
			b := &flakyBackend{Backend: mem.New()}
			s := newShipper(t, src, b)
			s.SpoolSize = 512 << 10
			r := run(t, s)
			load(t, src, 6, 300)
			caughtUp(t, src, s)
			b.setFailing(true)
			load(t, src, 7, 1500) // more than the spool holds
			waitFor(t, 30*time.Second, "the spool to fill", func() bool { return !s.Stats().Connected })
			load(t, src, 8, 300) // while disconnected
			b.setFailing(false)
			waitFor(t, 60*time.Second, "connected", func() bool { return s.Stats().Connected })
			load(t, src, 9, 300)
			caughtUp(t, src, s)
			r.stop(t)
			if st := s.Stats(); st.Reconnects == 0 {
				t.Errorf("expected the spool to fill and the link to drop: %+v", st)
			}
			gens := checkRepo(t, b, src.Digest(context.Background()))
			if len(gens) != tc.gens {
				t.Fatalf("%d generations, want %d", len(gens), tc.gens)
			}
			for _, g := range gens[:len(gens)-1] {
				if !g.Ended || !strings.Contains(g.EndReason, "spool full") {
					t.Errorf("generation %s was replaced but not ended with the reason: %+v", g.ID, g)
				}
			}
		})
	}
}

func TestShipper_AckDurable(t *testing.T) {
	for _, mode := range []string{AckDurable, AckProcessed} {
		t.Run(mode, func(t *testing.T) {
			src := startSource(t)
			b := &flakyBackend{Backend: mem.New()}
			s := newShipper(t, src, b)
			s.Ack = mode
			r := run(t, s)
			defer r.stop(t)
			ctx := context.Background()
			c := src.Client()
			waitFor(t, 30*time.Second, "connected", func() bool { return s.Stats().Connected })
			gate := make(chan struct{})
			b.mu.Lock()
			b.gate = gate
			b.mu.Unlock()
			if err := c.Set(ctx, "durable", "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
			afterSet := replOffset(t, src)
			n, err := c.Do(ctx, "WAIT", 1, 1500).Int()
			if err != nil {
				t.Fatal(err)
			}
			if mode == AckDurable && n != 0 {
				t.Fatalf("WAIT 1 returned %d while the segment could not be stored", n)
			}
			if mode == AckProcessed && n != 1 {
				t.Fatalf("WAIT 1 returned %d with --ack processed", n)
			}
			close(gate)
			n, err = c.Do(ctx, "WAIT", 1, 5000).Int()
			if err != nil || n != 1 {
				t.Fatalf("WAIT 1 after storage works = %d, %v", n, err)
			}
			if mode == AckProcessed {
				return
			}
			gens, err := catalog.ListGenerations(ctx, b)
			if err != nil || len(gens) != 1 {
				t.Fatal(gens, err)
			}
			segs, err := catalog.ListSegments(ctx, b, gens[0].ID)
			if err != nil || len(segs) == 0 {
				t.Fatal(segs, err)
			}
			if end := segs[len(segs)-1].End; end < afterSet {
				t.Errorf("WAIT succeeded but the stored log ends at %d, the write ends at %d", end, afterSet)
			}
		})
	}
}

// TestShipper_KillDashNine kills a shipping process with SIGKILL mid-load,
// 20 times at random moments, and checks that the log continues without a
// gap and that base + log replay to the source's final digest.
func TestShipper_KillDashNine(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src := startSource(t)
	dir := t.TempDir()
	var wg sync.WaitGroup
	wg.Add(1)
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		for i := uint64(0); ; i++ {
			select {
			case <-done:
				return
			default:
			}
			load(t, src, 100+i, 200)
			// Paced, so that while a slow machine keeps restarting the
			// child, the writes since the last stored offset stay well
			// inside the source's 64 MB backlog (past it a new
			// generation would be right, and this test would not test
			// the resume).
			time.Sleep(20 * time.Millisecond)
		}
	}()
	rng := rand.New(rand.NewPCG(9, 9))
	var childLogs []string
	for i := 0; i < 20; i++ { // the figure: 20 kills at random moments under load
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "REDBACK_SHIP_CHILD_SOURCE="+src.URL(), "REDBACK_SHIP_CHILD_REPO="+dir)
		var logs strings.Builder
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		childLogs = append(childLogs, logs.String())
		if testing.Verbose() {
			t.Logf("child %d:\n%s", i, logs.String())
		}
	}
	close(done)
	wg.Wait()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := newShipper(t, src, b)
	r := run(t, s)
	caughtUp(t, src, s)
	r.stop(t)
	gens := checkRepo(t, b, src.Digest(context.Background()))
	if len(gens) != 1 {
		for _, g := range gens {
			t.Logf("generation %s: replid %s, start offset %d, created %s", g.ID, g.ReplID, g.StartOffset, g.Created)
		}
		for i, l := range childLogs {
			t.Logf("child %d:\n%s", i, l)
		}
		t.Fatalf("want one generation across kill -9, got %d", len(gens))
	}
}

func TestShipper_Pinned(t *testing.T) {
	src := startSource(t)
	b := mem.New()
	s := newShipper(t, src, b)
	r := run(t, s)
	waitFor(t, 30*time.Second, "connected", func() bool { return s.Stats().Connected })
	r.stop(t)
	gens, err := catalog.ListGenerations(context.Background(), b)
	if err != nil || len(gens) != 1 {
		t.Fatal(gens, err)
	}
	if ok, why := s.Pinned(gens[0].BaseSnapshot); !ok || why == "" {
		t.Errorf("base snapshot not pinned")
	}
	if ok, _ := s.Pinned("other"); ok {
		t.Errorf("other snapshot pinned")
	}
}

// TestShipper_Failover ships from a replica that is then promoted: the
// partial resync answers +CONTINUE with a new replid, and the generation
// goes on under it (no full resync), recording the failover.
func TestShipper_Failover(t *testing.T) {
	p := startSource(t)
	r := startSource(t, "--replicaof", "127.0.0.1", strconv.Itoa(p.Port))
	ctx := context.Background()
	waitFor(t, 30*time.Second, "replica link", func() bool {
		txt, _ := r.Client().Info(ctx, "replication").Result()
		return strings.Contains(txt, "master_link_status:up")
	})
	b := mem.New()
	s := newShipper(t, r, b)
	run := run(t, s)
	load(t, p, 20, 300)
	caughtUp(t, r, s)
	waitFor(t, 30*time.Second, "durable", func() bool { st := s.Stats(); return st.DurableOffset == st.PrimaryOffset })
	if err := r.Client().Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the failover followed", func() bool { return s.Stats().Failovers >= 1 })
	load(t, r, 21, 300)
	caughtUp(t, r, s)
	run.stop(t)
	gens := checkRepo(t, b, r.Digest(ctx))
	if len(gens) != 1 || gens[0].Ended || len(gens[0].Failovers) != 1 {
		t.Fatalf("want 1 open generation with 1 failover: %+v", gens)
	}
	info, _ := r.Client().Info(ctx, "replication").Result()
	if !strings.Contains(info, "master_replid:"+gens[0].ReplID) {
		t.Fatalf("generation replid %s is not the promoted replica's:\n%s", gens[0].ReplID, info)
	}
	t.Logf("failover recorded: %+v", gens[0].Failovers[0])
}

func TestShipper_Encrypted(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pack.ParseRecipients([]string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	src := startSource(t)
	b := mem.New()
	for i := 0; i < 2; i++ { // the second run resumes without reading encrypted data
		s := newShipper(t, src, b)
		s.Pack.Recipients = rs
		r := run(t, s)
		load(t, src, uint64(30+i), 200)
		caughtUp(t, src, s)
		r.stop(t)
	}
	ctx := context.Background()
	gens, err := catalog.ListGenerations(ctx, b)
	if err != nil || len(gens) != 1 {
		t.Fatalf("generations %v, %v", gens, err)
	}
	segs, err := catalog.ListSegments(ctx, b, gens[0].ID)
	if err != nil || len(segs) == 0 {
		t.Fatal(segs, err)
	}
	for _, sg := range segs {
		if sg.Object.Encryption != pack.EncryptionAge || !strings.HasSuffix(sg.Object.Key, ".age") || len(sg.Object.Recipients) != 1 {
			t.Fatalf("segment object %+v", sg.Object)
		}
		rc, err := b.Get(ctx, sg.Object.Key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := pack.NewReader(rc, pack.Expect{Key: sg.Object.Key, Size: sg.Object.StoredBytes, SHA256: sg.Object.SHA256, Encrypted: true}, []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(pr)
		pr.Close()
		rc.Close()
		if err != nil || int64(len(data)) != sg.Object.RawBytes || !bytes.HasPrefix(data, []byte("*2\r\n$6\r\nSELECT\r\n")) {
			t.Fatalf("%s: %d bytes, %v", sg.Object.Key, len(data), err)
		}
	}
	if gaps := catalog.Contiguity(gens[0], segs); len(gaps) != 0 {
		t.Fatalf("gaps %v", gaps)
	}
}

// Issue 23's recipe: with repl-ping-replica-period 1, the last segment is
// cut during a quiet spell, the primary's PING opens the next one and a
// command arrives in the next wall-clock second before the cut. Every
// stored segment must pass the restore path's check (it used to fail
// "index checkpoint does not fall on a command start").
func TestShipper_SegmentOpenedByPing(t *testing.T) {
	src := startSource(t, "--repl-ping-replica-period", "1")
	b := mem.New()
	s := newShipper(t, src, b)
	s.Interval = time.Second
	r := run(t, s)
	ctx := context.Background()
	c := src.Client()
	waitFor(t, 30*time.Second, "connected", func() bool { return s.Stats().Connected })
	hit := false
	for attempt := 0; attempt < 8 && !hit; attempt++ {
		time.Sleep(1500 * time.Millisecond) // quiet: the last segment is cut
		// Wait for the PING (14 bytes) to grow the offset.
		before := replOffset(t, src)
		var pingAt time.Time
		for i := 0; i < 300; i++ {
			if replOffset(t, src) > before {
				pingAt = time.Now()
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if pingAt.IsZero() {
			continue
		}
		boundary := pingAt.Truncate(time.Second).Add(time.Second + 20*time.Millisecond)
		if boundary.Sub(pingAt) > 700*time.Millisecond {
			continue // too close to the cut; wait for the next PING
		}
		time.Sleep(time.Until(boundary))
		if err := c.Incr(ctx, "n").Err(); err != nil {
			t.Fatal(err)
		}
		hit = true
	}
	if !hit {
		r.stop(t) // (a skipped test leaves no shipper running)
		t.Skip("no PING was seen early enough in a second (machine too slow)")
	}
	caughtUp(t, src, s)
	r.stop(t)
	checkRepo(t, b, src.Digest(ctx))
}

// TestShipper_ValueLargerThanSpool sends a 200 MB value with the default
// 64 MiB spool while a stored segment waits for storage: the value waits
// for the spool to drain and passes alone; no resync, no new generation,
// and the repository restores to the source's DEBUG DIGEST.
func TestShipper_ValueLargerThanSpool(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MB value")
	}
	ctx := context.Background()
	src := startSource(t)
	fb := &flakyBackend{Backend: mem.New()}
	s := newShipper(t, src, fb)
	logs := &lockedBuffer{}
	s.Log = slog.New(slog.NewTextHandler(logs, nil))
	r := run(t, s)
	waitFor(t, 30*time.Second, "the first generation", func() bool { return s.Stats().Generations == 1 && s.Stats().Connected })
	gate := make(chan struct{})
	fb.mu.Lock()
	fb.gate = gate
	fb.mu.Unlock()
	load(t, src, 3, 200)
	waitFor(t, 30*time.Second, "a segment waiting for storage", func() bool { return s.Stats().SpoolBytes > 0 })

	if err := src.Client().Set(ctx, "big", strings.Repeat("b", 200<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Release storage once the shipper holds the value.
	waitFor(t, 60*time.Second, "the shipper to receive the value", func() bool {
		return strings.Contains(logs.String(), "a command larger than the spool")
	})
	close(gate)
	load(t, src, 4, 200)
	want := replOffset(t, src)
	// 200 MB through zstd on a shared machine: generous bounds.
	waitFor(t, 180*time.Second, fmt.Sprintf("processed offset %d", want), func() bool { return s.Stats().PrimaryOffset >= want })
	waitFor(t, 180*time.Second, "everything stored", func() bool { st := s.Stats(); return st.DurableOffset >= st.PrimaryOffset })
	r.stop(t)
	st := s.Stats()
	if st.Generations != 1 || st.Reconnects != 0 {
		t.Fatalf("a value larger than the spool forced a resync: %+v\n%s", st, logs.String())
	}
	gens := checkRepo(t, fb, src.Digest(ctx))
	if len(gens) != 1 {
		t.Fatalf("generations %+v, want one", gens)
	}
}
