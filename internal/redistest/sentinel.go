package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name the sentinels of a SentinelSet monitor.
const MasterName = "mymaster"

// SentinelSet is a Sentinel-managed set for tests: data nodes (the first
// started as the primary, the others as its replicas) and three sentinels
// (`redis-server FILE --sentinel`) monitoring it as MasterName with
// down-after-milliseconds 1000 and quorum 2, all on loopback.
type SentinelSet struct {
	t         testing.TB
	Nodes     []*Server
	Sentinels []*Server
}

// StartSentinelSet starts a primary, replicas replicas and three sentinels,
// and waits until every sentinel knows the other two and sees every
// replica as a healthy one (so that a failover can pick it).
func StartSentinelSet(t testing.TB, replicas int, extra ...string) *SentinelSet {
	t.Helper()
	return startSentinelSet(t, nil, replicas, extra)
}

// StartMutualTLSSentinelSet is StartSentinelSet with every process (data
// nodes and sentinels) listening only on a tls-port that requires a client
// certificate of ca (tls-auth-clients yes), replicating over TLS
// (tls-replication yes), and the sentinels reaching the nodes and each
// other over TLS with certificates of ca. Its URL is rediss+sentinel://.
func StartMutualTLSSentinelSet(t testing.TB, ca *CA, replicas int, extra ...string) *SentinelSet {
	t.Helper()
	return startSentinelSet(t, ca, replicas, extra)
}

func startSentinelSet(t testing.TB, ca *CA, replicas int, extra []string) *SentinelSet {
	t.Helper()
	ss := &SentinelSet{t: t}
	node := func(args ...string) *Server {
		if ca != nil {
			return StartMutualTLS(t, ca, args...)
		}
		return Start(t, args...)
	}
	primary := node(extra...)
	ss.Nodes = append(ss.Nodes, primary)
	for i := 0; i < replicas; i++ {
		r := node(append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.Port)}, extra...)...)
		ss.Nodes = append(ss.Nodes, r)
	}
	for i := 0; i < 3; i++ {
		ss.Sentinels = append(ss.Sentinels, startSentinel(t, primary.Port, ca))
	}
	ctx := context.Background()
	ss.WaitHealthy(ctx, 60*time.Second)
	return ss
}

func startSentinel(t testing.TB, primaryPort int, ca *CA) *Server {
	t.Helper()
	s := &Server{t: t, Dir: t.TempDir()}
	s.Port = FreePort(t)
	conf := filepath.Join(s.Dir, "sentinel.conf")
	listen := fmt.Sprintf("port %d\n", s.Port)
	if ca != nil {
		cert, key := ca.serverCert(t, s)
		listen = fmt.Sprintf("port 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients yes\ntls-replication yes\n",
			s.Port, cert, key, ca.File)
	}
	text := listen + fmt.Sprintf(`bind 127.0.0.1
dir %s
logfile %s
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
`, s.Dir, filepath.Join(s.Dir, "redis.log"), MasterName, primaryPort, MasterName, MasterName, MasterName)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s.args = []string{conf, "--sentinel"}
	if err := s.spawn(Binary(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// URL is redis+sentinel://<the three sentinels>/mymaster, or
// rediss+sentinel:// for a set made by StartMutualTLSSentinelSet.
func (ss *SentinelSet) URL() string {
	addrs := make([]string, len(ss.Sentinels))
	for i, s := range ss.Sentinels {
		addrs[i] = s.Addr()
	}
	scheme := "redis+sentinel://"
	if ss.Sentinels[0].tls != nil {
		scheme = "rediss+sentinel://"
	}
	return scheme + strings.Join(addrs, ",") + "/" + MasterName
}

// SentinelClient is a go-redis sentinel client for sentinel i (over TLS
// with a client certificate in a TLS set); the caller closes it.
func (ss *SentinelSet) SentinelClient(i int) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: ss.Sentinels[i].Addr(), DisableIdentity: true, TLSConfig: ss.Sentinels[i].tls})
}

// PrimaryAddr is the primary's address according to sentinel 0.
func (ss *SentinelSet) PrimaryAddr(ctx context.Context) string {
	ss.t.Helper()
	c := ss.SentinelClient(0)
	defer c.Close()
	r, err := c.GetMasterAddrByName(ctx, MasterName).Result()
	if err != nil {
		ss.t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME: %v", err)
	}
	return net.JoinHostPort(r[0], r[1])
}

// Node returns the data node at addr (nil if none).
func (ss *SentinelSet) Node(addr string) *Server {
	for _, n := range ss.Nodes {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

// Primary is the node the sentinels name as primary.
func (ss *SentinelSet) Primary(ctx context.Context) *Server {
	ss.t.Helper()
	return ss.Node(ss.PrimaryAddr(ctx))
}

// WaitHealthy waits until every sentinel knows the other two, names the
// same primary, that primary says role:master, and every other running
// data node is a replica the sentinels see linked and up (a failover can
// pick it). It fails the test after timeout.
func (ss *SentinelSet) WaitHealthy(ctx context.Context, timeout time.Duration) {
	ss.t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for i := 0; ; i++ {
		why = ss.unhealthy(ctx)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			ss.t.Fatalf("sentinel set not healthy after %s: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (ss *SentinelSet) unhealthy(ctx context.Context) string {
	var primary string
	for i := range ss.Sentinels {
		c := ss.SentinelClient(i)
		defer c.Close()
		r, err := c.GetMasterAddrByName(ctx, MasterName).Result()
		if err != nil {
			return fmt.Sprintf("sentinel %d: %v", i, err)
		}
		addr := net.JoinHostPort(r[0], r[1])
		if primary == "" {
			primary = addr
		} else if addr != primary {
			return fmt.Sprintf("sentinels disagree: %s vs %s", primary, addr)
		}
		ps, err := c.Sentinels(ctx, MasterName).Result()
		if err != nil || len(ps) < len(ss.Sentinels)-1 {
			return fmt.Sprintf("sentinel %d knows %d other sentinels (%v)", i, len(ps), err)
		}
		m, err := c.Master(ctx, MasterName).Result()
		if err != nil || strings.Contains(m["flags"], "down") || strings.Contains(m["flags"], "failover") {
			return fmt.Sprintf("sentinel %d: master flags %q (%v)", i, m["flags"], err)
		}
		rs, err := c.Replicas(ctx, MasterName).Result()
		if err != nil {
			return fmt.Sprintf("sentinel %d: replicas: %v", i, err)
		}
		for _, n := range ss.Nodes {
			if n.Addr() == primary || !n.Running() {
				continue
			}
			ok := false
			for _, r := range rs {
				if net.JoinHostPort(r["ip"], r["port"]) == n.Addr() && r["flags"] == "slave" && r["master-link-status"] == "ok" &&
					r["master-host"]+":"+r["master-port"] == primary {
					ok = true
				}
			}
			if !ok {
				return fmt.Sprintf("sentinel %d does not see %s as a healthy replica of %s", i, n.Addr(), primary)
			}
		}
	}
	p := ss.Node(primary)
	if p == nil {
		return "unknown primary " + primary
	}
	info, err := p.Client().Info(ctx, "replication").Result()
	if err != nil || !strings.Contains(info, "role:master") {
		return fmt.Sprintf("%s is not yet a master (%v)", primary, err)
	}
	return ""
}

// Failover runs SENTINEL FAILOVER on sentinel 0 and waits until the set is
// healthy under a new primary; it returns the new primary.
func (ss *SentinelSet) Failover(ctx context.Context) *Server {
	ss.t.Helper()
	old := ss.PrimaryAddr(ctx)
	c := ss.SentinelClient(0)
	defer c.Close()
	for i := 0; ; i++ {
		err := c.Failover(ctx, MasterName).Err()
		if err == nil {
			break
		}
		// -INPROG or -NOGOODSLAVE right after a previous failover: the
		// sentinels have not refreshed the replicas yet.
		if i >= 300 {
			ss.t.Fatalf("SENTINEL FAILOVER: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ss.waitNewPrimary(ctx, old)
}

func (ss *SentinelSet) waitNewPrimary(ctx context.Context, old string) *Server {
	ss.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		if ss.PrimaryAddr(ctx) != old {
			break
		}
		if time.Now().After(deadline) {
			ss.t.Fatalf("no failover away from %s within 60s", old)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ss.WaitHealthy(ctx, 60*time.Second)
	return ss.Primary(ctx)
}

// KillPrimary kills the primary with SIGKILL (no graceful failover), waits
// until the sentinels promoted a replica, restarts the old node (it comes
// back empty, as a replica after the sentinels reconfigure it) and waits
// until the set is healthy. It returns the new primary.
func (ss *SentinelSet) KillPrimary(ctx context.Context) *Server {
	ss.t.Helper()
	oldAddr := ss.PrimaryAddr(ctx)
	old := ss.Node(oldAddr)
	old.Kill()
	deadline := time.Now().Add(60 * time.Second)
	for ss.PrimaryAddr(ctx) == oldAddr {
		if time.Now().After(deadline) {
			ss.t.Fatalf("no failover away from the killed %s within 60s", oldAddr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	old.mu.Lock()
	old.cmd = nil
	old.mu.Unlock()
	if err := old.spawn(Binary(ss.t)); err != nil {
		ss.t.Fatal(err)
	}
	ss.WaitHealthy(ctx, 60*time.Second)
	return ss.Primary(ctx)
}

// SentinelLogs returns the three sentinels' logs.
func (ss *SentinelSet) SentinelLogs() []string {
	out := make([]string, len(ss.Sentinels))
	for i, s := range ss.Sentinels {
		out[i] = s.Log()
	}
	return out
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}
