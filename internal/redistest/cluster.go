package redistest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of real servers on loopback owned by a test.
type Cluster struct {
	t     testing.TB
	Nodes []*Server // every node, in the order given to redis-cli --cluster create
	// replicas is the number of nodes that are replicas once the cluster
	// formed.
	replicas int
}

// clusterPort returns a free loopback port p whose cluster bus port
// p+10000 is free too.
func clusterPort(t testing.TB) int {
	t.Helper()
	for range 200 {
		p := FreePort(t)
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatal("no free port pair (p, p+10000) on 127.0.0.1")
	return 0
}

// StartCluster starts primaries×(1+replicas) cluster-enabled servers
// (extra as in Start), joins them with redis-cli --cluster create
// --cluster-replicas replicas --cluster-yes, and waits until every node
// says cluster_state:ok and every replica's link is up.
func StartCluster(t testing.TB, primaries, replicas int, extra ...string) *Cluster {
	t.Helper()
	cli := Tool(t, "redis-cli")
	c := &Cluster{t: t, replicas: primaries * replicas}
	args := []string{"--cluster", "create"}
	for range primaries * (1 + replicas) {
		s := &Server{t: t, Dir: t.TempDir(), Port: clusterPort(t)}
		// A node timeout long enough that a node starved of CPU on a
		// loaded machine is not marked failed (its replica would show as
		// "fail" in CLUSTER SHARDS, or be promoted): the tests fail over
		// only by CLUSTER FAILOVER, which does not wait for it.
		s.start(append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000"}, extra...))
		c.Nodes = append(c.Nodes, s)
		args = append(args, s.Addr())
	}
	if primaries < 3 {
		// redis-cli --cluster create wants 3 primaries: assign the slots
		// and join the nodes by hand.
		if replicas != 0 {
			t.Fatal("StartCluster: fewer than 3 primaries only without replicas")
		}
		ctx := context.Background()
		for i, n := range c.Nodes {
			lo, hi := i*16384/primaries, (i+1)*16384/primaries-1
			if err := n.Client().Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
				t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", n.Addr(), err)
			}
			if i > 0 {
				if err := n.Client().ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(c.Nodes[0].Port)).Err(); err != nil {
					t.Fatalf("CLUSTER MEET: %v", err)
				}
			}
		}
		c.WaitOK()
		return c
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	return c
}

// WaitOK waits (bounded) until every node reports cluster_state:ok and
// agrees on the slot owners, and every replica's link to its primary is up.
func (c *Cluster) WaitOK() {
	c.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for i := 0; i < 600 && time.Now().Before(deadline); i++ {
		last = ""
		nrep := 0
		for _, n := range c.Nodes {
			ci, err := n.Client().ClusterInfo(ctx).Result()
			if err != nil {
				last = err.Error()
				break
			}
			if !strings.Contains(ci, "cluster_state:ok") {
				last = n.Addr() + " not ok: " + ci
				break
			}
			info, err := n.Client().Info(ctx, "replication").Result()
			if err != nil {
				last = err.Error()
				break
			}
			if strings.Contains(info, "role:slave") {
				nrep++
			}
			if strings.Contains(info, "role:slave") && !strings.Contains(info, "master_link_status:up") {
				last = n.Addr() + " replica link down"
				break
			}
			if strings.Contains(info, "role:slave") && strings.Contains(info, "master_sync_in_progress:1") {
				last = n.Addr() + " syncing"
				break
			}
		}
		if last == "" && nrep != c.replicas {
			last = fmt.Sprintf("%d of %d replicas", nrep, c.replicas)
		}
		if last == "" {
			// Every node must see every other as connected, and each in
			// its role (a replica's role reaches the others by gossip:
			// until then they list it as a primary without slots).
			for _, n := range c.Nodes {
				txt, err := n.Client().ClusterNodes(ctx).Result()
				if err != nil || strings.Count(txt, " connected") != len(c.Nodes) || strings.Contains(txt, "fail") {
					last = n.Addr() + " does not see all nodes connected"
					break
				}
				if got := nodesWithFlag(txt, "slave"); got != c.replicas {
					last = fmt.Sprintf("%s sees %d of %d replicas", n.Addr(), got, c.replicas)
					break
				}
			}
		}
		if last == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("cluster not ok in time: %s", last)
}

// nodesWithFlag counts the lines of a CLUSTER NODES reply whose flags
// (the third field) include flag.
func nodesWithFlag(txt, flag string) int {
	n := 0
	for _, line := range strings.Split(txt, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && slices.Contains(strings.Split(f[2], ","), flag) {
			n++
		}
	}
	return n
}

// Primaries are the nodes that are primaries now.
func (c *Cluster) Primaries() []*Server {
	return c.byRole("master")
}

// Replicas are the nodes that are replicas now.
func (c *Cluster) Replicas() []*Server {
	return c.byRole("slave")
}

func (c *Cluster) byRole(role string) []*Server {
	c.t.Helper()
	var out []*Server
	for _, n := range c.Nodes {
		info, err := n.Client().Info(context.Background(), "replication").Result()
		if err != nil {
			c.t.Fatalf("INFO on %s: %v", n.Addr(), err)
		}
		if strings.Contains(info, "role:"+role+"\r") {
			out = append(out, n)
		}
	}
	return out
}

// URL is the redis:// URL of the first node.
func (c *Cluster) URL() string { return c.Nodes[0].URL() }

// Client returns a go-redis cluster client for the cluster; close it.
func (c *Cluster) Client() *redis.ClusterClient {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, DisableIdentity: true, ReadTimeout: 30 * time.Second})
}

// Digests are DEBUG DIGEST of every primary.
func (c *Cluster) Digests(ctx context.Context) []string {
	var out []string
	for _, p := range c.Primaries() {
		out = append(out, p.Digest(ctx))
	}
	return out
}

// Keys is the number of keys on the primaries.
func (c *Cluster) Keys(ctx context.Context) int64 {
	var n int64
	for _, p := range c.Primaries() {
		k, err := p.Client().DBSize(ctx).Result()
		if err != nil {
			c.t.Fatalf("DBSIZE on %s: %v", p.Addr(), err)
		}
		n += k
	}
	return n
}

// WaitReplicated waits (bounded) until every replica has the offset of its
// primary, so a replica's data equals its primary's, and every node sees
// every replica as online in CLUSTER SHARDS (a replica whose offset was
// not gossiped yet shows as "loading").
func (c *Cluster) WaitReplicated() {
	c.t.Helper()
	ctx := context.Background()
	defer func() {
		// Every node must see every node online (not loading, not yet
		// gossiped): a snapshot that prefers replicas asks one node.
		last := ""
		for i := 0; i < 600; i++ {
			ready := true
			for _, n := range c.Nodes {
				v, err := n.Client().Do(ctx, "CLUSTER", "SHARDS").Result()
				if err != nil {
					c.t.Fatalf("CLUSTER SHARDS on %s: %v", n.Addr(), err)
				}
				last = fmt.Sprint(v)
				if strings.Contains(last, "loading") || strings.Count(last, "online") < len(c.Nodes) {
					ready = false
					break
				}
				txt, err := n.Client().ClusterNodes(ctx).Result()
				if err != nil {
					c.t.Fatalf("CLUSTER NODES on %s: %v", n.Addr(), err)
				}
				if got := nodesWithFlag(txt, "slave"); got != c.replicas {
					last = fmt.Sprintf("%s sees %d of %d replicas:\n%s", n.Addr(), got, c.replicas, txt)
					ready = false
					break
				}
			}
			if ready {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.t.Fatalf("not every node online in CLUSTER SHARDS within 60 s: %s", last)
	}()
	for _, p := range c.Primaries() {
		info, _ := p.Client().Info(ctx, "replication").Result()
		if strings.Contains(info, "connected_slaves:0") {
			continue
		}
		if err := p.Client().Do(ctx, "WAIT", 1, 10000).Err(); err != nil {
			c.t.Fatalf("WAIT on %s: %v", p.Addr(), err)
		}
	}
}

// PopulateCluster writes n string keys (a quarter with TTLs), and a few of
// every other type, some sharing a hash tag, through a cluster client. It
// returns the number of keys written.
func PopulateCluster(t testing.TB, c *Cluster, n int) int {
	t.Helper()
	ctx := context.Background()
	cc := c.Client()
	defer cc.Close()
	far := time.Now().Add(240 * time.Hour).UnixMilli()
	keys := 0
	p := cc.Pipeline()
	for i := range n {
		k := fmt.Sprintf("key:%d", i)
		switch i % 4 {
		case 0:
			p.Do(ctx, "SET", k, i*7-3)
		case 1:
			p.Do(ctx, "SET", k, fmt.Sprintf("value-%d", i))
		case 2:
			p.Do(ctx, "SET", "{tag}"+k, strings.Repeat("abc", 10+i%5))
		case 3:
			p.Do(ctx, "SET", k, "expiring", "PXAT", far+int64(i))
		}
		keys++
	}
	m := max(n/10, 4)
	for j := range 6 {
		pre := fmt.Sprintf("c%d:", j)
		for i := range m {
			p.Do(ctx, "RPUSH", pre+"list", fmt.Sprint(i), strings.Repeat("x", 20))
			p.Do(ctx, "SADD", pre+"set", i, fmt.Sprintf("member-%d", i))
			p.Do(ctx, "ZADD", pre+"zset", float64(i)/10, fmt.Sprintf("m%d", i))
			p.Do(ctx, "HSET", pre+"hash", fmt.Sprintf("f%d", i), i)
			p.Do(ctx, "XADD", pre+"stream", fmt.Sprintf("%d-1", 1000+i), "field", fmt.Sprint(i))
		}
		p.Do(ctx, "PEXPIREAT", pre+"hash", far+int64(j))
		keys += 5
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatalf("populate cluster: %v", err)
	}
	return keys
}
