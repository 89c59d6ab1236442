package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/redistest"
	"redback/internal/scratch"
	"redback/internal/snapshot"
	"redback/internal/storage/file"
)

// dumpRDB is redistest.SmallDump plus keys whose TTL passes right after
// the SAVE; it returns the dump and the time by which they have passed.
func dumpRDB(t *testing.T) ([]byte, time.Time) {
	t.Helper()
	var expired time.Time
	data := redistest.SmallDump(t, 300, func(do func(args ...any)) {
		// Keys that expire between the snapshot and the drill: the scratch
		// server must keep them for the digest to match.
		do("DEBUG", "SET-ACTIVE-EXPIRE", "0")
		for i := range 5 {
			do("SET", fmt.Sprintf("short:%d", i), "v", "PX", "300")
		}
		do("HSET", "shorthash", "f", "v")
		do("PEXPIRE", "shorthash", "300")
		expired = time.Now().Add(400 * time.Millisecond)
	})
	return data, expired
}

type repo struct {
	b    *file.Backend
	dir  string
	snap *catalog.Snapshot
}

func newRepo(t *testing.T, data []byte) *repo {
	t.Helper()
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Store(t.Context(), bytes.NewReader(data), snapshot.Options{Backend: b, Method: "rdb-file", Pack: pack.Options{}})
	if err != nil {
		t.Fatal(err)
	}
	return &repo{b: b, dir: dir, snap: snap}
}

func (r *repo) objectPath() string {
	return filepath.Join(r.dir, filepath.FromSlash(r.snap.Object.Key))
}

// waitUntil blocks until t has passed (bounded by the test's deadline).
func waitUntil(t *testing.T, when time.Time) {
	t.Helper()
	for i := 0; i < 100 && time.Now().Before(when); i++ {
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(time.Until(when) + time.Millisecond):
		}
	}
}

// run drills with a scratch dir it checks is empty afterwards and returns
// the report, the scratch server's pid (0 if none started) and the error.
func run(t *testing.T, ctx context.Context, o Options) (*Report, int, error) {
	t.Helper()
	scratch := t.TempDir()
	o.ScratchDir = scratch
	pid := 0
	prev := o.onServer
	o.onServer = func(p int) {
		pid = p
		if prev != nil {
			prev(p)
		}
	}
	rep, err := Run(ctx, o)
	if pid != 0 {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("scratch redis-server pid %d still exists after Run (kill -0: %v)", pid, err)
		}
	}
	left, _ := os.ReadDir(scratch)
	if len(left) != 0 {
		t.Errorf("scratch dir not cleaned: %v", left)
	}
	return rep, pid, err
}

func TestRun_Good(t *testing.T) {
	data, expired := dumpRDB(t)
	r := newRepo(t, data)
	waitUntil(t, expired)
	rep, pid, err := run(t, t.Context(), Options{Backend: r.b, Snapshot: r.snap, SampleKeys: 1000, RTOObjective: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if pid == 0 {
		t.Fatal("no scratch server started")
	}
	if !rep.OK {
		t.Fatalf("drill failed: %+v", rep.Checks)
	}
	if rep.Keys != r.snap.Census.Keys || rep.Keys != 316 || !rep.DigestMatch || rep.Digest != r.snap.Digest {
		t.Errorf("keys %d (census %d), digest %s (manifest %s)", rep.Keys, r.snap.Census.Keys, rep.Digest, r.snap.Digest)
	}
	if rep.KeysAlreadyExpired != 6 {
		t.Errorf("already expired: %d, want 6", rep.KeysAlreadyExpired)
	}
	if rep.SampleChecked != 316 || rep.SampleMismatches != 0 || !rep.FunctionsOK || !rep.RTOMet {
		t.Errorf("report %+v", rep)
	}
	for _, p := range []string{PhaseFetch, PhaseRestore, PhaseLoad, PhaseChecks} {
		if _, ok := rep.Phases[p]; !ok {
			t.Errorf("phase %s not timed: %v", p, rep.Phases)
		}
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PASSED", "✓ **digest**", "| load |", "RTO", "RPO"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	// The pin was removed.
	if pins, err := catalog.ListPins(t.Context(), r.b); err != nil || len(pins) != 0 {
		t.Errorf("pins left: %v %v", pins, err)
	}
}

func TestRun_DamagedObject(t *testing.T) {
	data, _ := dumpRDB(t)
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"bitflip", func(b []byte) []byte { b[len(b)/2] ^= 0x01; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t, data)
			raw, err := os.ReadFile(r.objectPath())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(r.objectPath(), tc.damage(raw), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, pid, err := run(t, t.Context(), Options{Backend: r.b, Snapshot: r.snap})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || pid != 0 {
				t.Fatalf("damaged object passed (pid %d): %+v", pid, rep.Checks)
			}
			f := rep.Failed()
			if len(f) != 1 || f[0].Name != CheckRestore || !strings.Contains(f[0].Detail, r.snap.Object.Key) {
				t.Fatalf("failed checks %+v", f)
			}
		})
	}
}

func TestRun_MissingObject(t *testing.T) {
	data, _ := dumpRDB(t)
	r := newRepo(t, data)
	os.Remove(r.objectPath())
	rep, _, err := run(t, t.Context(), Options{Backend: r.b, Snapshot: r.snap})
	if err != nil || rep.OK || len(rep.Failed()) != 1 || !strings.Contains(rep.Failed()[0].Detail, "missing") {
		t.Fatalf("%v %+v", err, rep)
	}
}

func TestRun_DigestTampered(t *testing.T) {
	data, _ := dumpRDB(t)
	r := newRepo(t, data)
	r.snap.Digest = strings.Repeat("ab", 20)
	r.snap.Census.Keys++
	r.snap.Census.DBs[0].Keys++
	rep, pid, err := run(t, t.Context(), Options{Backend: r.b, Snapshot: r.snap})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.DigestMatch || pid == 0 {
		t.Fatalf("tampered manifest passed: %+v", rep.Checks)
	}
	var names []string
	for _, c := range rep.Failed() {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "keys,digest" {
		t.Fatalf("failed checks %v", rep.Failed())
	}
}

func TestRun_RTOObjectiveMissed(t *testing.T) {
	data, _ := dumpRDB(t)
	r := newRepo(t, data)
	rep, _, err := run(t, t.Context(), Options{Backend: r.b, Snapshot: r.snap, RTOObjective: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.RTOMet || rep.RTOObjectiveSeconds != 1e-9 {
		t.Fatalf("%+v", rep)
	}
	if f := rep.Failed(); len(f) != 1 || f[0].Name != CheckRTO {
		t.Fatalf("failed %+v", f)
	}
}

func TestRun_CanceledWhileLoading(t *testing.T) {
	data, _ := dumpRDB(t)
	r := newRepo(t, data)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rep, pid, err := run(t, ctx, Options{Backend: r.b, Snapshot: r.snap, onServer: func(int) { cancel() }})
	if !errors.Is(err, context.Canceled) || pid == 0 || rep == nil || rep.OK {
		t.Fatalf("err %v pid %d rep %+v", err, pid, rep)
	}
}

func TestRun_NoServer(t *testing.T) {
	data, _ := dumpRDB(t)
	r := newRepo(t, data)
	_, _, err := run(t, t.Context(), Options{Backend: r.b, Snapshot: r.snap, RedisServer: filepath.Join(t.TempDir(), "no-redis-server")})
	if !errors.Is(err, scratch.ErrNoServer) {
		t.Fatalf("err %v", err)
	}
}

func TestSelect(t *testing.T) {
	data, _ := dumpRDB(t)
	dir := t.TempDir()
	b, _ := file.New(dir)
	var snaps []*catalog.Snapshot
	for i := range 3 {
		s, err := snapshot.Store(t.Context(), bytes.NewReader(data), snapshot.Options{Backend: b, ID: fmt.Sprintf("20261125T00000%d.000Z-00000%d", i, i)})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
	}
	got, err := Select(t.Context(), b, "", time.Time{})
	if err != nil || got.ID != snaps[2].ID {
		t.Fatalf("latest: %v %v", got, err)
	}
	got, err = Select(t.Context(), b, "", snaps[1].EndTime)
	if err != nil || got.ID != snaps[1].ID {
		t.Fatalf("at: %v %v", got, err)
	}
	_, err = Select(t.Context(), b, "", snaps[0].EndTime.Add(-time.Hour))
	if !errors.Is(err, catalog.ErrNoSnapshot) {
		t.Fatalf("before the oldest: %v", err)
	}
	got, err = Select(t.Context(), b, snaps[0].ID, time.Time{})
	if err != nil || got.ID != snaps[0].ID {
		t.Fatalf("by id: %v %v", got, err)
	}
}

func TestRun_Encrypted(t *testing.T) {
	data, _ := dumpRDB(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pack.ParseRecipients([]string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Store(t.Context(), bytes.NewReader(data), snapshot.Options{Backend: b, Pack: pack.Options{Recipients: rs}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, t.Context(), Options{Backend: b, Snapshot: snap}); err == nil || !strings.Contains(err.Error(), "--identity") {
		t.Fatalf("no identity: %v", err)
	}
	rep, _, err := run(t, t.Context(), Options{Backend: b, Snapshot: snap, Identities: []age.Identity{id}})
	if err != nil || !rep.OK || !strings.Contains(rep.Checks[0].Detail, "decrypted") {
		t.Fatalf("%v %+v", err, rep)
	}
}

// TestRun_DebugRefused: a --redis-server that refuses DEBUG (a wrapper
// adding --enable-debug-command no). The drill passes, verified by the key
// counts and the sample read with DUMP and PEXPIRETIME, and says so
// (verified_by "sample", a note, no digest check).
func TestRun_DebugRefused(t *testing.T) {
	real := redistest.Binary(t)
	wrapper := filepath.Join(t.TempDir(), "redis-server")
	script := "#!/bin/sh\nexec " + real + " \"$@\" --enable-debug-command no\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	data, expired := dumpRDB(t)
	r := newRepo(t, data)
	waitUntil(t, expired)
	rep, _, err := run(t, t.Context(), Options{Backend: r.b, Snapshot: r.snap, SampleKeys: 1000, RedisServer: wrapper})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.VerifiedBy != "sample" || rep.SampleChecked != 316 || rep.SampleMismatches != 0 || rep.Keys != 316 {
		t.Fatalf("report %+v", rep)
	}
	for _, c := range rep.Checks {
		if c.Name == CheckDigest {
			t.Errorf("a digest check without DEBUG: %+v", c)
		}
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "DEBUG DIGEST was refused") {
		t.Errorf("no note says DEBUG was refused: %q", rep.Notes)
	}
}
