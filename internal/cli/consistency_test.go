package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"redback/internal/redistest"
)

func TestConsistency(t *testing.T) {
	s := redistest.Start(t)
	ctx := t.Context()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true})
	for i := 0; i < 50; i++ {
		c.Set(ctx, fmt.Sprintf("k%d", i), i, 0)
		c.RPush(ctx, "list", i)
		c.HSet(ctx, "hash", fmt.Sprintf("f%d", i), i)
	}
	c.ZAdd(ctx, "z", redis.Z{Score: 1, Member: "a"})
	c.Close() // only the checker stays connected
	code, out, errs := runCLI(t, "consistency", "--redis", s.URL())
	if code == ExitFailure && strings.Contains(errs, "other client") {
		t.Skip("another client is connected")
	}
	if code != 0 || !strings.Contains(out, "match") || !strings.Contains(out, "blocked") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}

	// Another client connected to a primary: refused without --force.
	other := redis.NewClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true})
	defer other.Close()
	if err := other.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, "consistency", "--redis", s.URL())
	if code != ExitFailure || !strings.Contains(errs, "replica") || !strings.Contains(errs, "--force") {
		t.Fatalf("busy primary: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "consistency", "--redis", s.URL(), "--force", "--json")
	var res consistencyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.Match || res.DigestBefore == "" || res.DigestBefore != res.DigestAfter {
		t.Fatalf("--force --json: exit %d %v\n%s%s", code, err, out, errs)
	}
}

func TestConsistency_DebugDisabled(t *testing.T) {
	s := redistest.Start(t, "--enable-debug-command", "no")
	code, out, errs := runCLI(t, "consistency", "--redis", s.URL())
	if code != ExitFailure || !strings.Contains(errs, "enable-debug-command") || !strings.Contains(errs, "restart") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}

func TestConsistency_Usage(t *testing.T) {
	if code, _, _ := runCLI(t, "consistency"); code != ExitUsage {
		t.Fatalf("no --redis: exit %d", code)
	}
	if code, _, _ := runCLI(t, "consistency", "--redis", "redis://127.0.0.1:1", "extra"); code != ExitUsage {
		t.Fatalf("extra arg: exit %d", code)
	}
}
