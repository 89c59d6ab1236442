package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/redistest"
)

// TestTLS_MutualAgentRotation: redis-servers that require client
// certificates (tls-port only, tls-auth-clients yes). A snapshot and a
// restore over mutual TLS with --tls-*; then the agent, with tls: in its
// config, ships over rediss:// and a restore of the newest point is
// digest-equal. While it runs the client certificate files are replaced:
// by a certificate of a CA the server does not trust (the next connection
// is refused: the agent read the new files), then by a good one (it ships
// again), and the final restore is digest-equal.
func TestTLS_MutualAgentRotation(t *testing.T) {
	dir := t.TempDir()
	ca := redistest.NewCA(t, dir, "good")
	rogue := redistest.NewCA(t, dir, "rogue")
	src := redistest.StartMutualTLS(t, ca)
	redistest.Populate(t, src, 300)
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	install := func(c *redistest.CA, cn string) { c.IssueTo(t, certFile, keyFile, cn) }
	install(ca, "redback-1")
	tlsFlags := []string{"--tls-ca", ca.File, "--tls-cert", certFile, "--tls-key", keyFile}
	srcURL := "rediss://" + src.Addr()

	// One-shot verbs: a snapshot and a restore, both over mutual TLS.
	repo1 := "file://" + t.TempDir()
	if code, out, errs := runCLI(t, append([]string{"snapshot", "--source", srcURL, "--repo", repo1}, tlsFlags...)...); code != ExitOK {
		t.Fatalf("snapshot over mutual TLS: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCLI(t, "snapshot", "--source", srcURL, "--repo", repo1, "--tls-ca", ca.File); code == ExitOK {
		t.Fatal("snapshot without a client certificate: exit 0")
	} else if !strings.Contains(errs, "certificate") {
		t.Logf("refused without a client certificate: %s", errs)
	}
	dst := redistest.StartMutualTLS(t, ca)
	if code, out, errs := runCLI(t, append([]string{"restore", "--repo", repo1, "--latest", "--to-redis", "rediss://" + dst.Addr()}, tlsFlags...)...); code != ExitOK {
		t.Fatalf("restore over mutual TLS: exit %d\n%s%s", code, out, errs)
	}
	if got, want := dst.Digest(t.Context()), src.Digest(t.Context()); got != want {
		t.Fatalf("restored digest %s, source %s", got, want)
	}

	// The agent, with tls: in its config, shipping over rediss://.
	repo := "file://" + t.TempDir()
	port := redistest.FreePort(t)
	cfg := filepath.Join(dir, "agent.yaml")
	text := fmt.Sprintf(`listen: 127.0.0.1:%d
grace_period: 5s
tls: {ca: %s, cert: %s, key: %s}
sources:
  - name: secure
    source: %s
    repo: %s
    snapshot: {every: 1h}
    ship: {enabled: true, interval: 100ms}
`, port, ca.File, certFile, keyFile, srcURL, repo)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "agent", "--config", cfg, "--check-config"); code != ExitOK {
		t.Fatalf("check-config: exit %d\n%s%s", code, out, errs)
	}
	agent := startRedback(t, "agent", "--config", cfg)
	status := func() string {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", port))
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	write := func(prefix string) {
		t.Helper()
		for i := range 50 {
			if err := src.Client().Set(t.Context(), fmt.Sprintf("%s:%d", prefix, i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	restoreEqual := func(what string) {
		t.Helper()
		if !durableWithin(t, src, repo, "secure", 60*time.Second) {
			t.Fatalf("%s: not durable in 60 s; status %s\n%s", what, status(), agent.out.String())
		}
		d := redistest.Start(t)
		if code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", d.URL()); code != ExitOK {
			t.Fatalf("%s: restore: exit %d\n%s%s", what, code, out, errs)
		}
		if got, want := d.Digest(t.Context()), src.Digest(t.Context()); got != want {
			t.Fatalf("%s: restored digest %s, source %s", what, got, want)
		}
	}
	write("before")
	restoreEqual("shipped over mutual TLS")

	// Rotation to a certificate the server does not trust: the next
	// connection (after the replica link is cut) presents it and is refused.
	install(rogue, "redback-rogue")
	if err := src.Client().Do(t.Context(), "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	refused := false
	for i := 0; i < 300 && !refused; i++ {
		st := status()
		refused = strings.Contains(st, "certificate") && strings.Contains(st, `"connected": false`)
		if !refused {
			time.Sleep(100 * time.Millisecond)
		} else if i := strings.Index(st, "certificate"); i >= 0 {
			t.Logf("refused: …%s…", st[max(0, i-80):min(len(st), i+40)])
		}
	}
	if !refused {
		t.Fatalf("the rogue certificate was not refused (not read?); status %s\nserver log:\n%s", status(), src.Log())
	}
	// A good new certificate: shipping resumes without a restart.
	install(ca, "redback-2")
	write("after-rotation")
	restoreEqual("after the rotation")
	if code := agent.wait(0); code >= 0 {
		t.Fatalf("the agent exited (%d)", code)
	}
}

// TestTLS_SentinelSet: a Sentinel-managed set where every process (primary,
// replica, three sentinels) listens only on a tls-port requiring a client
// certificate of the test's CA, replicates over TLS (tls-replication yes),
// and the sentinels reach the nodes and each other over TLS. Through
// rediss+sentinel:// with --tls-*: a snapshot (of the replica) and its
// restore are digest-equal; a snapshot without a client certificate fails;
// `redback ship` follows the set, also across a failover (its +switch-master
// subscription is a TLS connection to a sentinel), and restore --at latest
// is digest-equal.
func TestTLS_SentinelSet(t *testing.T) {
	dir := t.TempDir()
	ca := redistest.NewCA(t, dir, "good")
	ss := redistest.StartMutualTLSSentinelSet(t, ca, 1)
	ctx := t.Context()
	primary := ss.Primary(ctx)
	keys := redistest.Populate(t, primary, 200)
	replica := ss.Nodes[1]
	want := primary.Digest(ctx)
	for i := 0; i < 300 && replica.Digest(ctx) != want; i++ {
		_, _ = primary.Client().Do(ctx, "WAIT", 1, 100).Result()
	}
	if replica.Digest(ctx) != want {
		t.Fatal("the replica did not catch up over TLS replication")
	}
	cert, key := ca.Issue(t, dir, "redback")
	tlsFlags := []string{"--tls-ca", ca.File, "--tls-cert", cert, "--tls-key", key}
	setURL := ss.URL()
	if !strings.HasPrefix(setURL, "rediss+sentinel://") {
		t.Fatalf("set URL %s", setURL)
	}

	repo := "file://" + t.TempDir()
	code, out, errs := runCLI(t, append([]string{"snapshot", "--source", setURL, "--repo", repo, "--json"}, tlsFlags...)...)
	if code != ExitOK {
		t.Fatalf("snapshot through TLS sentinels: exit %d\n%s%s", code, out, errs)
	}
	var snap catalog.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Digest != want || snap.Census.Keys != int64(keys) || snap.Source.Node != "rediss://"+replica.Addr() {
		t.Fatalf("snapshot digest %s keys %d node %s, want %s %d rediss://%s", snap.Digest, snap.Census.Keys, snap.Source.Node, want, keys, replica.Addr())
	}
	if code, _, errs := runCLI(t, "snapshot", "--source", setURL, "--repo", repo, "--tls-ca", ca.File); code == ExitOK {
		t.Fatal("snapshot without a client certificate: exit 0")
	} else if !strings.Contains(errs, "sentinel") {
		t.Fatalf("refused without a client certificate, but the error does not name the sentinels: %s", errs)
	}
	dst := redistest.StartMutualTLS(t, ca)
	if code, out, errs := runCLI(t, append([]string{"restore", "--repo", repo, "--latest", "--to-redis", "rediss://" + dst.Addr()}, tlsFlags...)...); code != ExitOK {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
	}
	if got := dst.Digest(ctx); got != want {
		t.Fatalf("restored digest %s, want %s", got, want)
	}

	// Shipping through the sentinels, across a failover.
	shipRepo := "file://" + t.TempDir()
	r := startShipVia(t, primary, setURL, shipRepo, append([]string{"--interval", "100ms"}, tlsFlags...)...)
	write := func(s *redistest.Server, prefix string) {
		t.Helper()
		for i := range 50 {
			if err := s.Client().Set(ctx, fmt.Sprintf("%s:%d", prefix, i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	restoreEqual := func(what string, src *redistest.Server) {
		t.Helper()
		r.src = src
		r.waitDurable()
		d := redistest.Start(t)
		if code, out, errs := runCLI(t, "restore", "--repo", shipRepo, "--at", "latest", "--to-redis", d.URL()); code != ExitOK {
			t.Fatalf("%s: restore --at latest: exit %d\n%s%s", what, code, out, errs)
		}
		if got, want := d.Digest(ctx), src.Digest(ctx); got != want {
			t.Fatalf("%s: restored digest %s, source %s", what, got, want)
		}
	}
	write(primary, "shipped")
	restoreEqual("shipped through TLS sentinels", primary)
	next := ss.Failover(ctx)
	if next == primary {
		t.Fatal("the failover kept the primary")
	}
	write(next, "after-failover")
	restoreEqual("after a failover", next)
	if code := r.stop(); code != ExitOK {
		t.Fatalf("ship exit %d\n%s", code, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "switch-master") && !strings.Contains(r.stderr.String(), "failover") {
		t.Logf("ship log:\n%s", r.stderr.String())
	}
}

// TestTLS_ShipStandalone: `redback ship` (not the agent) over rediss:// to
// a server requiring client certificates, then restore --at latest
// digest-equal.
func TestTLS_ShipStandalone(t *testing.T) {
	dir := t.TempDir()
	ca := redistest.NewCA(t, dir, "good")
	src := redistest.StartMutualTLS(t, ca)
	redistest.Populate(t, src, 300)
	cert, key := ca.Issue(t, dir, "redback")
	tlsFlags := []string{"--tls-ca", ca.File, "--tls-cert", cert, "--tls-key", key}
	srcURL := "rediss://" + src.Addr()
	repo := "file://" + t.TempDir()

	r := startShipVia(t, src, srcURL, repo, append([]string{"--interval", "100ms"}, tlsFlags...)...)
	r.waitDurable()
	for i := range 100 {
		if err := src.Client().Set(t.Context(), fmt.Sprintf("after:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r.waitDurable()
	d := redistest.Start(t)
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", d.URL()); code != ExitOK {
		t.Fatalf("restore --at latest: exit %d\n%s%s", code, out, errs)
	}
	if got, want := d.Digest(t.Context()), src.Digest(t.Context()); got != want {
		t.Fatalf("restored digest %s, source %s", got, want)
	}
	if code := r.stop(); code != ExitOK {
		t.Fatalf("ship exit %d\n%s", code, r.stderr.String())
	}
}
