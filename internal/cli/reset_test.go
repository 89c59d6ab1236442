package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"redback/internal/redistest"
)

// TestShip_ResetKeepsLatest kills a shipping source with SIGKILL and
// starts it again empty (no persistence: a new replid, no keys). The new
// generation must be marked as a reset (list --json and text, log, ship's
// counters), and `restore --at latest` must still give the DEBUG DIGEST
// from before the crash, saying why; prune with --keep-pitr 0 keeps the
// point before the reset.
func TestShip_ResetKeepsLatest(t *testing.T) {
	src := redistest.Start(t)
	repo := "file://" + filepath.Join(t.TempDir(), "repo")
	bg := context.Background()
	ship := startShip(t, src, repo, "--interval", "100ms", "--json")
	ship.waitDurable()
	p := src.Client().Pipeline()
	for i := 0; i < 300; i++ {
		p.Set(bg, "k:"+strconv.Itoa(i), strings.Repeat("v", i), 0)
	}
	if _, err := p.Exec(bg); err != nil {
		t.Fatal(err)
	}
	if err := src.Client().HSet(bg, "h", "a", 1, "b", 2).Err(); err != nil {
		t.Fatal(err)
	}
	before := ship.waitDurable()
	want := src.Digest(bg)

	src.Kill()
	src.Restart()
	after := ship.waitDurable()
	if after == before {
		t.Fatalf("no new generation after the restart (%s)", after)
	}

	l := ship.list()
	var reset bool
	for _, w := range l.Generations {
		if w.Generation == after {
			reset = w.Reset && w.ResetFrom == before && strings.Contains(w.ResetReason, "empty")
		}
	}
	if !reset {
		t.Fatalf("generation %s not listed as a reset of %s: %+v", after, before, l.Generations)
	}
	code, out, errs := runCLI(t, "list", "--repo", repo)
	if code != ExitOK || !strings.Contains(out, "RESET after "+before) || !strings.Contains(out, "newest durable point:") ||
		!strings.Contains(out, "(generation "+before) {
		t.Fatalf("list: exit %d, want the reset and the newest point of %s\n%s%s", code, before, out, errs)
	}
	if code, out, errs := runCLI(t, "log", "--repo", repo); code != ExitOK || !strings.Contains(errs, "generation "+after+" is a RESET") {
		t.Fatalf("log: exit %d, no reset note\n%s%s", code, out, errs)
	}

	restoreLatest := func() {
		t.Helper()
		dst := redistest.Start(t)
		defer dst.Stop()
		code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", dst.URL())
		if code != ExitOK {
			t.Fatalf("restore --at latest: exit %d\n%s%s", code, out, errs)
		}
		if !strings.Contains(errs, after+" is a reset") || !strings.Contains(errs, before) {
			t.Fatalf("restore --at latest does not say why it picks %s over the reset %s:\n%s%s", before, after, out, errs)
		}
		if got := dst.Digest(bg); got != want {
			t.Fatalf("restore --at latest: digest %s, want the pre-crash %s\n%s%s", got, want, out, errs)
		}
	}
	restoreLatest()

	// ship holds the source's lease: prune after it stopped.
	if code := ship.stop(); code != ExitOK {
		t.Fatalf("ship exit %d: %s", code, ship.stderr.String())
	}
	var st struct{ Resets int64 }
	if err := json.Unmarshal([]byte(ship.stdout.String()), &st); err != nil || st.Resets != 1 {
		t.Fatalf("ship --json: resets %d (%v)\n%s", st.Resets, err, ship.stdout.String())
	}
	// Retention keeps the point before the reset, even without a window.
	code, out, errs = runCLI(t, "prune", "--repo", repo, "--keep-pitr", "0", "--keep-hourly", "0", "--keep-daily", "0",
		"--keep-weekly", "0", "--keep-monthly", "0")
	if code != ExitOK || !strings.Contains(out, "keep log generation "+before+": holds the newest point before the reset") {
		t.Fatalf("prune: exit %d\n%s%s", code, out, errs)
	}
	restoreLatest()

	if !strings.Contains(ship.stderr.String(), "the source came back empty") {
		t.Fatalf("ship logged no warning about the empty source:\n%s", ship.stderr.String())
	}
}
