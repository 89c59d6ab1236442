package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"redback/internal/catalog"
	"redback/internal/redistest"
)

// TestSentinel_CLI: snapshot, consistency and migrate accept a
// redis+sentinel:// URL; a snapshot reads the healthy replica unless
// --prefer-replica=false.
func TestSentinel_CLI(t *testing.T) {
	ss := redistest.StartSentinelSet(t, 1)
	ctx := t.Context()
	primary := ss.Primary(ctx)
	keys := redistest.Populate(t, primary, 200)
	replica := ss.Nodes[1]
	if replica == primary {
		t.Fatal("the replica is the primary")
	}
	want := primary.Digest(ctx)
	for i := 0; i < 200 && replica.Digest(ctx) != want; i++ {
		_, _ = primary.Client().Do(ctx, "WAIT", 1, 100).Result()
	}
	repo := "file://" + t.TempDir()
	for _, tc := range []struct {
		flag string
		node *redistest.Server
	}{{"--prefer-replica=true", replica}, {"--prefer-replica=false", primary}} {
		code, out, errs := runCLI(t, "snapshot", "--source", ss.URL(), "--repo", repo, "--json", tc.flag)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", tc.flag, code, errs)
		}
		var snap catalog.Snapshot
		if err := json.Unmarshal([]byte(out), &snap); err != nil {
			t.Fatal(err)
		}
		if snap.Digest != want || snap.Census.Keys != int64(keys) {
			t.Fatalf("%s: digest %s keys %d, want %s %d", tc.flag, snap.Digest, snap.Census.Keys, want, keys)
		}
		if snap.Source.Address != ss.URL() || snap.Source.Node != tc.node.URL() {
			t.Fatalf("%s: source %+v, want the set %s read at %s", tc.flag, snap.Source, ss.URL(), tc.node.URL())
		}
	}
	if code, out, errs := runCLI(t, "consistency", "--redis", ss.URL(), "--json"); code != 0 || !strings.Contains(out, replica.Addr()) {
		t.Fatalf("consistency: exit %d\n%s\n%s", code, out, errs)
	}
	dst := redistest.Start(t)
	if code, _, errs := runCLI(t, "migrate", "--from", ss.URL(), "--to", dst.URL()); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, errs)
	}
	if got := dst.Digest(ctx); got != want {
		t.Fatalf("migrated digest %s, want %s", got, want)
	}
	if code, _, errs := runCLI(t, "snapshot", "--source", "redis+sentinel://127.0.0.1:1/mymaster", "--repo", repo); code != 1 || !strings.Contains(errs, "sentinel") {
		t.Fatalf("dead sentinel: exit %d\n%s", code, errs)
	}
}
