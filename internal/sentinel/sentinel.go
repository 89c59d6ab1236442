package sentinel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/redisurl"
)

// Primary asks u's sentinels, in the order given, for the address
// (host:port) of the primary of u's master. The first answer wins; an error
// lists every sentinel's failure (no secrets).
func Primary(ctx context.Context, u *redisurl.URL) (string, error) {
	if !u.IsSentinel() {
		return u.Addr, nil
	}
	name := u.Sentinel.MasterName
	var errs []error
	for _, a := range u.Sentinel.Addrs {
		c := redis.NewSentinelClient(u.SentinelOptions(a))
		r, err := c.GetMasterAddrByName(ctx, name).Result()
		c.Close()
		switch {
		case err == nil && len(r) == 2:
			return net.JoinHostPort(r[0], r[1]), nil
		case errors.Is(err, redis.Nil):
			err = fmt.Errorf("does not monitor a master named %q", name)
		case err == nil:
			err = fmt.Errorf("unexpected reply %q", r)
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %w", a, err))
		if ctx.Err() != nil {
			break
		}
	}
	return "", fmt.Errorf("ask the sentinels of %s for the primary: %w", u.Redacted(), errors.Join(errs...))
}

// Replica is one replica as a sentinel reports it.
type Replica struct {
	Addr string // host:port
	// Flags are the sentinel's flags (slave, s_down, disconnected, ...).
	Flags []string
	// LinkOK: master-link-status is ok.
	LinkOK bool
	// Offset is the replica's replication offset as last seen.
	Offset int64
}

// Healthy reports whether the replica is a sound source: linked to its
// primary, not down or disconnected, and a real server (not a link such
// as redback's, announced with port 0).
func (r Replica) Healthy() bool {
	if !r.LinkOK || strings.HasSuffix(r.Addr, ":0") {
		return false
	}
	for _, f := range r.Flags {
		switch f {
		case "s_down", "o_down", "disconnected":
			return false
		}
	}
	return true
}

// Replicas returns the replicas of u's master as the first sentinel that
// answers reports them (SENTINEL REPLICAS), healthy or not.
func Replicas(ctx context.Context, u *redisurl.URL) ([]Replica, error) {
	if !u.IsSentinel() {
		return nil, errors.New("sentinel: not a redis+sentinel:// URL")
	}
	var errs []error
	for _, a := range u.Sentinel.Addrs {
		c := redis.NewSentinelClient(u.SentinelOptions(a))
		rs, err := c.Replicas(ctx, u.Sentinel.MasterName).Result()
		c.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("sentinel %s: %w", a, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		out := make([]Replica, 0, len(rs))
		for _, m := range rs {
			r := Replica{Addr: net.JoinHostPort(m["ip"], m["port"]), LinkOK: m["master-link-status"] == "ok"}
			r.Flags = strings.Split(m["flags"], ",")
			fmt.Sscan(m["slave-repl-offset"], &r.Offset)
			out = append(out, r)
		}
		return out, nil
	}
	return nil, fmt.Errorf("ask the sentinels of %s for the replicas: %w", u.Redacted(), errors.Join(errs...))
}

// Options tune Resolve.
type Options struct {
	// PreferReplica picks a healthy replica (the most up to date one) when
	// there is one, else the primary.
	PreferReplica bool
}

// Resolve returns the URL of the node to connect to: u itself when it is
// not a Sentinel URL, else the primary (or, with PreferReplica, a healthy
// replica) that u's sentinels name.
func Resolve(ctx context.Context, u *redisurl.URL, o Options) (*redisurl.URL, error) {
	if !u.IsSentinel() {
		return u, nil
	}
	if o.PreferReplica {
		rs, err := Replicas(ctx, u)
		if err == nil {
			var best *Replica
			for i := range rs {
				if rs[i].Healthy() && (best == nil || rs[i].Offset > best.Offset) {
					best = &rs[i]
				}
			}
			if best != nil {
				return u.Node(best.Addr), nil
			}
		}
	}
	addr, err := Primary(ctx, u)
	if err != nil {
		return nil, err
	}
	return u.Node(addr), nil
}

// Event is what Watch reports.
type Event struct {
	// Addr is the new primary for a +switch-master, "" otherwise.
	Addr string
	// Sentinel is the sentinel the event came from.
	Sentinel string
	// Reason is "+switch-master", "subscribed" (a subscription started: a
	// switch may have been missed, re-ask) or "lost: <error>" (the
	// sentinel connection broke; Watch moves on to the next sentinel).
	Reason string
}

// watchPing is how long Watch waits for a message before it pings the
// sentinel to check the connection.
const watchPing = 2 * time.Second

// Watch subscribes to +switch-master on u's sentinels, one at a time (the
// next one when a connection breaks, with a capped back-off), and calls fn
// for every switch of u's master and every (re)subscription and loss, until
// ctx ends. fn runs on Watch's goroutine and must not block for long.
func Watch(ctx context.Context, u *redisurl.URL, fn func(Event)) {
	if !u.IsSentinel() {
		return
	}
	addrs := u.Sentinel.Addrs
	backoff := 100 * time.Millisecond
	for i := 0; ctx.Err() == nil; i++ {
		a := addrs[i%len(addrs)]
		subscribed, err := watchOne(ctx, u, a, fn)
		if ctx.Err() != nil {
			return
		}
		fn(Event{Sentinel: a, Reason: "lost: " + err.Error()})
		if subscribed {
			backoff = 100 * time.Millisecond
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func watchOne(ctx context.Context, u *redisurl.URL, addr string, fn func(Event)) (bool, error) {
	c := redis.NewSentinelClient(u.SentinelOptions(addr))
	defer c.Close()
	ps := c.Subscribe(ctx, "+switch-master")
	defer ps.Close()
	// The first reply confirms the subscription.
	if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil {
		return false, err
	}
	fn(Event{Sentinel: addr, Reason: "subscribed"})
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, watchPing)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged && ctx.Err() == nil {
				if err := ps.Ping(ctx); err != nil {
					return true, err
				}
				pinged = true
				continue
			}
			return true, err
		}
		pinged = false
		m, ok := msg.(*redis.Message)
		if !ok {
			continue
		}
		// <master name> <old ip> <old port> <new ip> <new port>
		f := strings.Fields(m.Payload)
		if len(f) == 5 && f[0] == u.Sentinel.MasterName {
			fn(Event{Addr: net.JoinHostPort(f[3], f[4]), Sentinel: addr, Reason: "+switch-master"})
		}
	}
}
