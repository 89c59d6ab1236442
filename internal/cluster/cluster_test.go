package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"redback/internal/redistest"
	"redback/internal/redisurl"
)

func TestDiscover(t *testing.T) {
	for _, replicas := range []int{0, 1} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			c := redistest.StartCluster(t, 3, replicas)
			ctx := context.Background()
			u, err := redisurl.Parse(c.URL(), redisurl.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := Enabled(ctx, u); err != nil || !ok {
				t.Fatalf("Enabled = %v, %v", ok, err)
			}
			redistest.PopulateCluster(t, c, 100)
			c.WaitReplicated()
			topo := waitOnline(t, u)
			if len(topo.Shards) != 3 || topo.Uncovered != 0 || len(topo.Migrations) != 0 {
				t.Fatalf("topology %+v", topo)
			}
			for _, s := range topo.Shards {
				if len(s.Replicas) != replicas {
					t.Errorf("shard %v: %d replicas", s.Slots, len(s.Replicas))
				}
				r := s.Read(true)
				if replicas > 0 && r.Primary {
					t.Errorf("shard %v: read the primary though a replica is online", s.Slots)
				}
				if !s.Read(false).Primary {
					t.Error("Read(false) is not the primary")
				}
			}
			// The slot map agrees with the servers, hash tags included.
			m := topo.SlotMap()
			cc := c.Client()
			defer cc.Close()
			for i := range 200 {
				key := fmt.Sprintf("k%d{t%d}x", i, i%7)
				if i%3 == 0 {
					key = fmt.Sprintf("plain-%d", i*31)
				}
				want, err := cc.ClusterKeySlot(ctx, key).Result()
				if err != nil {
					t.Fatal(err)
				}
				if got := Slot([]byte(key)); got != int(want) {
					t.Fatalf("Slot(%q) = %d, server says %d", key, got, want)
				}
				if m[want] < 0 {
					t.Fatalf("slot %d not mapped", want)
				}
			}

			// The CLUSTER NODES fallback reads the same shards.
			txt, err := c.Nodes[0].Client().ClusterNodes(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			shards, mig, err := ParseNodes(txt)
			if err != nil || len(shards) != 3 || len(mig) != 0 {
				t.Fatalf("ParseNodes: %v %d %v", err, len(shards), mig)
			}
			for i := range shards {
				if shards[i].Primary.ID != topo.Shards[i].Primary.ID || fmt.Sprint(shards[i].Slots) != fmt.Sprint(topo.Shards[i].Slots) || len(shards[i].Replicas) != replicas {
					t.Errorf("shard %d: NODES %+v, SHARDS %+v", i, shards[i], topo.Shards[i])
				}
			}

			// A slot being migrated is seen on both ends.
			src, dst := topo.Shards[0], topo.Shards[1]
			srcC := c.Nodes[0].Client()
			for _, n := range c.Nodes {
				if n.Addr() == src.Primary.Addr {
					srcC = n.Client()
				}
				if n.Addr() == dst.Primary.Addr {
					if err := n.Client().Do(ctx, "CLUSTER", "SETSLOT", 7, "IMPORTING", src.Primary.ID).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := srcC.Do(ctx, "CLUSTER", "SETSLOT", 7, "MIGRATING", dst.Primary.ID).Err(); err != nil {
				t.Fatal(err)
			}
			topo, err = Discover(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if len(topo.Migrations) != 2 {
				t.Fatalf("migrations %v", topo.Migrations)
			}
		})
	}
}

// waitOnline discovers until every replica is online (its offset is
// gossiped: a replica that shows offset 0 is "loading"), bounded.
func waitOnline(t *testing.T, u *redisurl.URL) *Topology {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		topo, err := Discover(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		online := true
		for _, s := range topo.Shards {
			for _, r := range s.Replicas {
				online = online && r.Online()
			}
		}
		if online || time.Now().After(deadline) {
			return topo
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestParseNodes(t *testing.T) {
	txt := `07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,hostname4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002,hostname2 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003,hostname3 master - 0 1426238318243 3 connected 10923-16383
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005,hostname5 slave 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 connected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30006@31006,hostname6 slave 292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 0 1426238317741 6 disconnected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001,hostname1 myself,master - 0 0 1 connected 0-5460 [5460->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1] [77-<-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]
`
	shards, mig, err := ParseNodes(txt)
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 3 || shards[0].Primary.Addr != "127.0.0.1:30001" || len(shards[0].Replicas) != 1 || shards[2].Replicas[0].Online() {
		t.Fatalf("%+v", shards)
	}
	if len(mig) != 2 || mig[0].State != "migrating" || mig[0].Slot != 5460 || mig[1].State != "importing" || mig[1].Slot != 77 {
		t.Fatalf("%+v", mig)
	}
	for _, bad := range []string{"x y z", "a 1:2@3 master - 0 0 1 connected 9-2", "a 1:2@3 master - 0 0 1 connected 99999"} {
		if _, _, err := ParseNodes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
