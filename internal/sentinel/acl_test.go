package sentinel

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/acl"
	"redback/internal/redistest"
	"redback/internal/redisurl"
)

// TestACL_SentinelUser proves `redback acl --for sentinel` on a real
// sentinel: a user with exactly those rules (with and without the optional
// ones) resolves the primary and the replicas and follows a failover; with
// any required command taken away the operation that needs it fails,
// naming the command; and the user cannot reconfigure, fail over or shut
// down the sentinel.
func TestACL_SentinelUser(t *testing.T) {
	ss := redistest.StartSentinelSet(t, 1)
	ctx := t.Context()
	admin := redis.NewClient(&redis.Options{Addr: ss.Sentinels[0].Addr(), DisableIdentity: true, Protocol: 2})
	defer admin.Close()
	modes, err := acl.Lookup([]string{"sentinel"})
	if err != nil {
		t.Fatal(err)
	}
	setUser := func(rules []string) {
		t.Helper()
		args := []any{"ACL", "SETUSER", "redback", "reset", "on", ">s3ntinel-pw"}
		for _, r := range rules {
			args = append(args, r)
		}
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("ACL SETUSER %v: %v", rules, err)
		}
	}
	u, err := redisurl.Parse("redis+sentinel://"+ss.Sentinels[0].Addr()+"/"+redistest.MasterName+"?sentinel_user=redback&sentinel_password=s3ntinel-pw", redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// watch runs Watch until it reports want (or 15 s), then returns the
	// events.
	watch := func(want func(Event) bool, during func()) []Event {
		t.Helper()
		var mu sync.Mutex
		var events []Event
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			Watch(wctx, u, func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
		}()
		defer func() { stop(); <-done }()
		started := false
		for i := 0; i < 300; i++ {
			mu.Lock()
			got := append([]Event(nil), events...)
			mu.Unlock()
			for _, e := range got {
				if want(e) {
					return got
				}
				if e.Reason == "subscribed" && !started && during != nil {
					started = true
					during()
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("Watch never reported what was wanted; events %+v", events)
		return nil
	}

	for _, optional := range []bool{true, false} {
		setUser(acl.Rules(modes, optional, ""))
		primary := ss.PrimaryAddr(ctx)
		if got, err := Primary(ctx, u); err != nil || got != primary {
			t.Fatalf("optional=%v: Primary = %q, %v; want %q", optional, got, err, primary)
		}
		if optional {
			rs, err := Replicas(ctx, u)
			if err != nil || len(rs) != 1 {
				t.Fatalf("Replicas = %+v, %v", rs, err)
			}
			// A failover followed through the subscription.
			var np string
			watch(func(e Event) bool { return e.Reason == "+switch-master" && e.Addr == np && np != "" }, func() {
				np = ss.Failover(ctx).Addr()
			})
			ss.WaitHealthy(ctx, 60*time.Second)
		} else {
			if _, err := Replicas(ctx, u); err == nil || !strings.Contains(err.Error(), "sentinel|replicas") {
				t.Fatalf("Replicas without the optional rule: %v", err)
			}
			// Resolve falls back to the primary.
			n, err := Resolve(ctx, u, Options{PreferReplica: true})
			if err != nil || n.Addr != primary {
				t.Fatalf("Resolve(PreferReplica) without sentinel|replicas = %v, %v", n, err)
			}
			watch(func(e Event) bool { return e.Reason == "subscribed" }, nil)
		}
	}

	// One required command fewer: the operation that needs it fails,
	// naming it.
	for _, p := range modes[0].Commands {
		if p.Optional != "" {
			continue
		}
		setUser(acl.Rules(modes, true, p.Command))
		switch p.Command {
		case "sentinel|get-master-addr-by-name":
			if _, err := Primary(ctx, u); err == nil || !strings.Contains(err.Error(), "NOPERM") || !strings.Contains(err.Error(), p.Command) {
				t.Fatalf("Primary without %s: %v", p.Command, err)
			}
		case "subscribe", "ping":
			// PING is sent after 2 s without a message.
			evs := watch(func(e Event) bool { return strings.HasPrefix(e.Reason, "lost:") }, nil)
			last := evs[len(evs)-1].Reason
			if !strings.Contains(last, "NOPERM") || !strings.Contains(last, p.Command) {
				t.Fatalf("Watch without %s: %v", p.Command, evs)
			}
		default:
			t.Fatalf("no check for %s", p.Command)
		}
	}

	// What the user cannot do.
	setUser(acl.Rules(modes, true, ""))
	c := redis.NewClient(&redis.Options{Addr: ss.Sentinels[0].Addr(), Username: "redback", Password: "s3ntinel-pw", DisableIdentity: true, Protocol: 2})
	defer c.Close()
	for _, cmd := range [][]any{
		{"SENTINEL", "SET", redistest.MasterName, "quorum", "1"},
		{"SENTINEL", "FAILOVER", redistest.MasterName},
		{"SENTINEL", "RESET", "*"},
		{"SENTINEL", "REMOVE", redistest.MasterName},
		{"SENTINEL", "CONFIG", "SET", "resolve-hostnames", "yes"},
		{"ACL", "SETUSER", "other", "on"},
		{"SHUTDOWN"},
		{"PUBLISH", "+switch-master", "x"},
	} {
		if err := c.Do(ctx, cmd...).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%v: %v, want NOPERM", cmd, err)
		}
	}
}
