package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"redback/internal/redistest"
)

// ageKey makes an identity and writes it to a file of its own.
func ageKey(t *testing.T, dir, name string) (*age.X25519Identity, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return id, f
}

// encryptedRepo is a file repository holding snapshots and shipped log
// segments of src, all encrypted to a; it returns the URL and the digest
// of src at the end.
func encryptedRepo(t *testing.T, src *redistest.Server, a *age.X25519Identity, snapshots int) (string, string) {
	t.Helper()
	repo := "file://" + t.TempDir()
	redistest.Populate(t, src, 300)
	for range snapshots {
		if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo, "--encrypt-to", a.Recipient().String()); code != ExitOK {
			t.Fatalf("snapshot: exit %d\n%s%s", code, out, errs)
		}
	}
	r := startShip(t, src, repo, "--interval", "100ms", "--encrypt-to", a.Recipient().String())
	r.waitDurable()
	c := src.Client()
	for i := range 50 {
		if err := c.HSet(t.Context(), "after:snapshot", i, i).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r.waitDurable()
	if code := r.stop(); code != ExitOK {
		t.Fatalf("ship: exit %d\n%s", code, r.stderr.String())
	}
	return repo, src.Digest(t.Context())
}

// TestRekey_RoundTrip rekeys a repository (snapshots and log segments)
// encrypted to A to B, removing A: a restore of the newest point with B is
// digest-equal to the source, A is refused, verify with B is clean.
func TestRekey_RoundTrip(t *testing.T) {
	dir := t.TempDir()
	a, aFile := ageKey(t, dir, "a.key")
	b, bFile := ageKey(t, dir, "b.key")
	src := redistest.Start(t)
	repo, digest := encryptedRepo(t, src, a, 1)

	// Usage mistakes: exit 2.
	if code, _, _ := runCLI(t, "rekey", "--repo", repo, "--identity", aFile); code != ExitUsage {
		t.Fatalf("no --encrypt-to: exit %d", code)
	}
	if code, _, _ := runCLI(t, "rekey", "--repo", repo, "--encrypt-to", "age1nope"); code != ExitUsage {
		t.Fatalf("bad --encrypt-to: exit %d", code)
	}
	// The wrong identity: exit 1, nothing changed.
	code, out, errs := runCLI(t, "rekey", "--repo", repo, "--identity", bFile, "--encrypt-to", b.Recipient().String())
	if code != ExitFailure || !strings.Contains(out, "none of the --identity identities") {
		t.Fatalf("wrong identity: exit %d\n%s%s", code, out, errs)
	}

	code, out, errs = runCLI(t, "rekey", "--repo", repo, "--identity", aFile, "--encrypt-to", b.Recipient().String(),
		"--remove-recipient", a.Recipient().String(), "--verify-identity", bFile, "--json")
	if code != ExitOK {
		t.Fatalf("rekey: exit %d\n%s%s", code, out, errs)
	}
	var res struct {
		Rekeyed []string `json:"rekeyed"`
		Total   int      `json:"objects"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	segs := 0
	for _, m := range res.Rekeyed {
		if strings.Contains(m, "/segs/") {
			segs++
		}
	}
	if segs == 0 || len(res.Rekeyed) < 3 || len(res.Rekeyed) != res.Total {
		t.Fatalf("rekeyed %v of %d objects (%d segments)", res.Rekeyed, res.Total, segs)
	}
	t.Logf("rekeyed %d objects (%d segments)", len(res.Rekeyed), segs)

	dst := redistest.Start(t)
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--identity", aFile, "--to-redis", dst.URL(), "--conflict", "replace"); code == ExitOK || !strings.Contains(out+errs, "identit") {
		t.Fatalf("restore with the removed key A: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--identity", bFile, "--to-redis", dst.URL(), "--conflict", "replace"); code != ExitOK {
		t.Fatalf("restore with B: exit %d\n%s%s", code, out, errs)
	}
	if got := dst.Digest(t.Context()); got != digest {
		t.Fatalf("restored digest %s, source %s", got, digest)
	}
	if code, out, errs := runCLI(t, "verify", "--repo", repo, "--identity", bFile); code != ExitOK || strings.Contains(out+errs, "not the standard") {
		t.Fatalf("verify with B: exit %d\n%s%s", code, out, errs)
	}
	// A second run has nothing to do.
	code, out, errs = runCLI(t, "rekey", "--repo", repo, "--identity", bFile, "--encrypt-to", b.Recipient().String(), "--remove-recipient", a.Recipient().String())
	if code != ExitOK || !strings.Contains(out, "rekeyed 0, already done "+jsonInt(res.Total)) {
		t.Fatalf("second run: exit %d\n%s%s", code, out, errs)
	}
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestRekey_KillNine kills a rekey subprocess (kill -9) after each step of
// an object's rewrite in turn; after every kill both keys together read the
// whole repository (verify is clean), and a last run completes: B restores
// digest-equal, A is refused.
func TestRekey_KillNine(t *testing.T) {
	dir := t.TempDir()
	a, aFile := ageKey(t, dir, "a.key")
	b, bFile := ageKey(t, dir, "b.key")
	both := filepath.Join(dir, "both.key")
	if err := os.WriteFile(both, []byte(a.String()+"\n"+b.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := redistest.Start(t)
	repo, digest := encryptedRepo(t, src, a, 2)
	args := []string{"rekey", "--repo", repo, "--identity", aFile, "--encrypt-to", b.Recipient().String(), "--remove-recipient", a.Recipient().String()}

	for _, step := range []string{"temp", "manifest-temp", "data", "manifest", "done", "temp"} {
		t.Setenv("REDBACK_TEST_REKEY_STOP", step)
		p := startRedback(t, args...)
		stopped := false
		for i := 0; i < 600 && !stopped; i++ {
			if strings.Contains(p.out.String(), "rekey: stopped at "+step) {
				stopped = true
				break
			}
			if code := p.wait(50 * time.Millisecond); code >= 0 {
				t.Fatalf("rekey ended (exit %d) before %s:\n%s", code, step, p.out.String())
			}
		}
		if !stopped {
			t.Fatalf("rekey did not reach %s in 30 s:\n%s", step, p.out.String())
		}
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		p.wait(30 * time.Second)
		if code, out, errs := runCLI(t, "verify", "--repo", repo, "--identity", both); code != ExitOK {
			t.Fatalf("verify after a kill at %s: exit %d\n%s%s", step, code, out, errs)
		}
	}
	t.Setenv("REDBACK_TEST_REKEY_STOP", "")
	if code, out, errs := runCLI(t, append(args, "--verify-identity", bFile)...); code != ExitOK {
		t.Fatalf("last run: exit %d\n%s%s", code, out, errs)
	}
	dst := redistest.Start(t)
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--identity", bFile, "--to-redis", dst.URL(), "--conflict", "replace"); code != ExitOK {
		t.Fatalf("restore with B: exit %d\n%s%s", code, out, errs)
	}
	if got := dst.Digest(t.Context()); got != digest {
		t.Fatalf("restored digest %s, source %s", got, digest)
	}
	if code, _, _ := runCLI(t, "verify", "--repo", repo, "--identity", aFile); code == ExitOK {
		t.Fatal("verify with the removed key A: exit 0")
	}
	var left []string
	filepath.WalkDir(strings.TrimPrefix(repo, "file://"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".rekey") {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("leftover copies: %v", left)
	}
}
