package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"redback/internal/redisurl"
)

// Range is an inclusive range of slots; it is written as [start, end] in JSON.
type Range [2]int

// String is "0-5460", or "42" for a single slot.
func (r Range) String() string {
	if r[0] == r[1] {
		return strconv.Itoa(r[0])
	}
	return fmt.Sprintf("%d-%d", r[0], r[1])
}

// Node is one server of a cluster.
type Node struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // host:port clients reach it at
	// Primary is true for a node that serves slots; a replica's
	// PrimaryID names its primary.
	Primary   bool   `json:"primary"`
	PrimaryID string `json:"primary_id,omitempty"`
	// Health is "online", "failed" or "loading" (CLUSTER SHARDS; from
	// CLUSTER NODES: "failed" for fail/fail?/noaddr, "online" when the
	// link is connected).
	Health string `json:"health"`
	Offset int64  `json:"replication_offset,omitempty"`
}

// Online reports whether the node is healthy.
func (n Node) Online() bool { return n.Health == "online" }

// Shard is a primary, its replicas and the slots it serves.
type Shard struct {
	Primary  Node    `json:"primary"`
	Replicas []Node  `json:"replicas,omitempty"`
	Slots    []Range `json:"slots"`
}

// FirstSlot is the lowest slot the shard serves (-1 when none).
func (s *Shard) FirstSlot() int {
	if len(s.Slots) == 0 {
		return -1
	}
	return s.Slots[0][0]
}

// SlotCount is how many slots the shard serves.
func (s *Shard) SlotCount() int {
	n := 0
	for _, r := range s.Slots {
		n += r[1] - r[0] + 1
	}
	return n
}

// Read returns the node a backup of the shard should read: the online
// replica with the highest replication offset when preferReplica is set
// and one is online, else the primary.
func (s *Shard) Read(preferReplica bool) Node {
	if preferReplica {
		best := -1
		for i, r := range s.Replicas {
			if r.Online() && (best < 0 || r.Offset > s.Replicas[best].Offset) {
				best = i
			}
		}
		if best >= 0 {
			return s.Replicas[best]
		}
	}
	return s.Primary
}

// Migration is one slot moving between two primaries, as the node that
// reports it sees it.
type Migration struct {
	Slot int    `json:"slot"`
	Node string `json:"node"` // the node reporting it
	// State is "migrating" (to Peer) or "importing" (from Peer).
	State string `json:"state"`
	Peer  string `json:"peer"`
}

func (m Migration) String() string {
	dir := "to"
	if m.State == "importing" {
		dir = "from"
	}
	return fmt.Sprintf("slot %d %s %s %s", m.Slot, m.State, dir, shortID(m.Peer))
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// Topology is the shape of a cluster at one moment.
type Topology struct {
	// Shards are the shards that serve slots, ordered by first slot.
	Shards []Shard `json:"shards"`
	// Migrations are slots moving between primaries right now.
	Migrations []Migration `json:"migrations,omitempty"`
	// Uncovered counts slots no shard serves (the cluster is then down
	// for those keys).
	Uncovered int `json:"uncovered_slots,omitempty"`
	// Via says how the shards were read: "CLUSTER SHARDS" or "CLUSTER NODES".
	Via string `json:"via"`
}

// SlotMap maps every slot to the index of its shard in Shards (-1: none).
func (t *Topology) SlotMap() []int {
	m := make([]int, Slots)
	for i := range m {
		m[i] = -1
	}
	for i, s := range t.Shards {
		for _, r := range s.Slots {
			for x := r[0]; x <= r[1] && x < Slots; x++ {
				m[x] = i
			}
		}
	}
	return m
}

// Primaries are the addresses of the shards' primaries, in shard order.
func (t *Topology) Primaries() []string {
	out := make([]string, len(t.Shards))
	for i, s := range t.Shards {
		out[i] = s.Primary.Addr
	}
	return out
}

// ErrNotCluster is returned by Discover for a server not in cluster mode.
var ErrNotCluster = errors.New("the server is not in cluster mode (INFO cluster: cluster_enabled:0)")

// Enabled reports whether the server at u runs in cluster mode (INFO
// cluster says cluster_enabled:1). A server that refuses INFO is taken as
// not clustered.
func Enabled(ctx context.Context, u *redisurl.URL) (bool, error) {
	c := redis.NewClient(u.GoRedisOptions())
	defer c.Close()
	txt, err := c.Info(ctx, "cluster").Result()
	var rerr redis.Error
	if errors.As(err, &rerr) && !strings.HasPrefix(rerr.Error(), "NOAUTH") && !strings.HasPrefix(rerr.Error(), "WRONGPASS") {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	return infoField(txt, "cluster_enabled") == "1", nil
}

func infoField(txt, name string) string {
	for _, line := range strings.Split(txt, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == name {
			return v
		}
	}
	return ""
}

// Discover reads the topology of the cluster that the node at u belongs
// to. Every other node is reached with u's credentials and TLS settings
// (u.Node).
func Discover(ctx context.Context, u *redisurl.URL) (*Topology, error) {
	t, err := DiscoverShards(ctx, u)
	if err != nil {
		return nil, err
	}
	// Only a node itself shows its migrating and importing slots.
	for _, s := range t.Shards {
		nc := client(u.Node(s.Primary.Addr))
		txt, err := nc.ClusterNodes(ctx).Result()
		nc.Close()
		if err != nil {
			return nil, fmt.Errorf("CLUSTER NODES on %s: %w", s.Primary.Addr, err)
		}
		_, mig, err := ParseNodes(txt)
		if err != nil {
			return nil, fmt.Errorf("CLUSTER NODES on %s: %w", s.Primary.Addr, err)
		}
		t.Migrations = append(t.Migrations, mig...)
	}
	return t, nil
}

// DiscoverShards is Discover without the migrations: it asks the node at u
// alone, so it answers while another node is down (a failover).
func DiscoverShards(ctx context.Context, u *redisurl.URL) (*Topology, error) {
	c := client(u)
	defer c.Close()
	txt, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		return nil, fmt.Errorf("INFO cluster on %s: %w", u.Redacted(), err)
	}
	if infoField(txt, "cluster_enabled") != "1" {
		return nil, ErrNotCluster
	}
	t := &Topology{Via: "CLUSTER SHARDS"}
	v, err := c.Do(ctx, "CLUSTER", "SHARDS").Result()
	var rerr redis.Error
	if errors.As(err, &rerr) && strings.Contains(strings.ToLower(rerr.Error()), "unknown") {
		t.Via = "CLUSTER NODES"
		var txt string
		if txt, err = c.ClusterNodes(ctx).Result(); err == nil {
			t.Shards, _, err = ParseNodes(txt)
		}
	} else if err == nil {
		t.Shards, err = parseShards(v, u.TLS())
	}
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", t.Via, u.Redacted(), err)
	}
	sortShards(t.Shards)
	covered := 0
	for i := range t.Shards {
		covered += t.Shards[i].SlotCount()
	}
	t.Uncovered = Slots - covered
	return t, nil
}

// client talks RESP2 so replies have one shape on every server.
func client(u *redisurl.URL) *redis.Client {
	o := u.GoRedisOptions()
	o.Protocol = 2
	return redis.NewClient(o)
}

func sortShards(s []Shard) {
	for i := range s {
		sort.Slice(s[i].Slots, func(a, b int) bool { return s[i].Slots[a][0] < s[i].Slots[b][0] })
	}
	sort.SliceStable(s, func(a, b int) bool { return s[a].FirstSlot() < s[b].FirstSlot() })
}

// parseShards reads a CLUSTER SHARDS reply (RESP2: arrays of name/value
// pairs). Shards without slots are left out.
func parseShards(v any, tls bool) ([]Shard, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected reply %T", v)
	}
	var out []Shard
	for _, e := range list {
		m, err := pairs(e)
		if err != nil {
			return nil, err
		}
		var s Shard
		sl, _ := m["slots"].([]any)
		for i := 0; i+1 < len(sl); i += 2 {
			a, ok1 := sl[i].(int64)
			b, ok2 := sl[i+1].(int64)
			if !ok1 || !ok2 || a < 0 || b < a || b >= Slots {
				return nil, fmt.Errorf("bad slot range %v-%v", sl[i], sl[i+1])
			}
			s.Slots = append(s.Slots, Range{int(a), int(b)})
		}
		nodes, _ := m["nodes"].([]any)
		var replicas []Node
		for _, ne := range nodes {
			nm, err := pairs(ne)
			if err != nil {
				return nil, err
			}
			n := Node{ID: str(nm["id"]), Health: str(nm["health"])}
			host := str(nm["endpoint"])
			if host == "" || host == "?" {
				host = str(nm["ip"])
			}
			port, _ := nm["port"].(int64)
			if tp, ok := nm["tls-port"].(int64); ok && (tls || port == 0) {
				port = tp
			}
			n.Addr = net.JoinHostPort(host, strconv.FormatInt(port, 10))
			n.Offset, _ = nm["replication-offset"].(int64)
			if str(nm["role"]) == "master" {
				n.Primary = true
				s.Primary = n
			} else {
				replicas = append(replicas, n)
			}
		}
		if len(s.Slots) == 0 || s.Primary.ID == "" {
			continue
		}
		for _, r := range replicas {
			r.PrimaryID = s.Primary.ID
			s.Replicas = append(s.Replicas, r)
		}
		out = append(out, s)
	}
	return out, nil
}

func pairs(v any) (map[string]any, error) {
	a, ok := v.([]any)
	if !ok || len(a)%2 != 0 {
		return nil, fmt.Errorf("unexpected reply element %T", v)
	}
	m := make(map[string]any, len(a)/2)
	for i := 0; i < len(a); i += 2 {
		m[str(a[i])] = a[i+1]
	}
	return m, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// ParseNodes reads CLUSTER NODES text: the shards that serve slots and the
// migrating and importing slots of the node marked "myself".
func ParseNodes(txt string) ([]Shard, []Migration, error) {
	var shards []Shard
	byID := map[string]int{}
	var replicas []Node
	var mig []Migration
	for _, line := range strings.Split(txt, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, nil, fmt.Errorf("short line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		flags := strings.Split(f[2], ",")
		n := Node{ID: f[0], Addr: addr, Health: "online"}
		if slices.Contains(flags, "fail") || slices.Contains(flags, "fail?") || slices.Contains(flags, "noaddr") || f[7] != "connected" && !slices.Contains(flags, "myself") {
			n.Health = "failed"
		}
		myself := slices.Contains(flags, "myself")
		if !slices.Contains(flags, "master") {
			n.PrimaryID = f[3]
			replicas = append(replicas, n)
			continue
		}
		n.Primary = true
		s := Shard{Primary: n}
		for _, sl := range f[8:] {
			if strings.HasPrefix(sl, "[") {
				in := strings.Trim(sl, "[]")
				if a, peer, ok := strings.Cut(in, "->-"); ok && myself {
					x, err := strconv.Atoi(a)
					if err != nil {
						return nil, nil, fmt.Errorf("bad slot %q", sl)
					}
					mig = append(mig, Migration{Slot: x, Node: n.ID, State: "migrating", Peer: peer})
				} else if a, peer, ok := strings.Cut(in, "-<-"); ok && myself {
					x, err := strconv.Atoi(a)
					if err != nil {
						return nil, nil, fmt.Errorf("bad slot %q", sl)
					}
					mig = append(mig, Migration{Slot: x, Node: n.ID, State: "importing", Peer: peer})
				}
				continue
			}
			a, b, ok := strings.Cut(sl, "-")
			if !ok {
				b = a
			}
			x, err1 := strconv.Atoi(a)
			y, err2 := strconv.Atoi(b)
			if err1 != nil || err2 != nil || x < 0 || y < x || y >= Slots {
				return nil, nil, fmt.Errorf("bad slot range %q", sl)
			}
			s.Slots = append(s.Slots, Range{x, y})
		}
		if len(s.Slots) > 0 {
			byID[n.ID] = len(shards)
			shards = append(shards, s)
		}
	}
	for _, r := range replicas {
		if i, ok := byID[r.PrimaryID]; ok {
			shards[i].Replicas = append(shards[i].Replicas, r)
		}
	}
	sortShards(shards)
	return shards, mig, nil
}
