package sentinel

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"redback/internal/redistest"
	"redback/internal/redisurl"
)

func TestResolveAndWatch(t *testing.T) {
	ss := redistest.StartSentinelSet(t, 1)
	ctx := t.Context()
	u, err := redisurl.Parse(ss.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	primary := ss.PrimaryAddr(ctx)
	if got, err := Primary(ctx, u); err != nil || got != primary {
		t.Fatalf("Primary = %q, %v; want %q", got, err, primary)
	}
	n, err := Resolve(ctx, u, Options{PreferReplica: true})
	if err != nil || n.Addr != ss.Nodes[1].Addr() || n.IsSentinel() {
		t.Fatalf("Resolve(PreferReplica) = %v, %v; want the replica %s", n, err, ss.Nodes[1].Addr())
	}

	// A dead sentinel first in the list: the next one answers.
	bad, err := redisurl.Parse("redis+sentinel://127.0.0.1:"+itoa(redistest.FreePort(t))+","+ss.Sentinels[1].Addr()+"/"+redistest.MasterName, redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Primary(ctx, bad); err != nil || got != primary {
		t.Fatalf("Primary past a dead sentinel = %q, %v", got, err)
	}
	unknown, _ := redisurl.Parse("redis+sentinel://"+ss.Sentinels[0].Addr()+"/nosuch", redisurl.Options{})
	if _, err := Primary(ctx, unknown); err == nil {
		t.Fatal("Primary of an unknown master name succeeded")
	}

	var mu sync.Mutex
	var events []Event
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(wctx, u, func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	}()
	defer func() { stop(); <-done }()
	waitFor(t, "subscribed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) > 0 && events[0].Reason == "subscribed"
	})
	np := ss.Failover(ctx)
	if np.Addr() == primary {
		t.Fatal("failover kept the primary")
	}
	waitFor(t, "+switch-master", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			if e.Reason == "+switch-master" && e.Addr == np.Addr() {
				return true
			}
		}
		return false
	})
	if got, err := Primary(ctx, u); err != nil || got != np.Addr() {
		t.Fatalf("Primary after failover = %q, %v; want %q", got, err, np.Addr())
	}
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for i := 0; i < 600; i++ {
		if f() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func itoa(n int) string { return strconv.Itoa(n) }
