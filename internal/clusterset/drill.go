package clusterset

import (
	"context"
	"fmt"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/digest"
	"redback/internal/restore"
	"redback/internal/scratch"
	"redback/internal/storage"
)

// DrillOptions tune DrillSet.
type DrillOptions struct {
	Identities []age.Identity
	// RedisServer is the scratch server binary; "" lets scratch.Choose
	// pick one that loads each shard's snapshot.
	RedisServer  string
	TempDir      string        // where the scratch servers' dirs go ("": os.TempDir())
	RTOObjective time.Duration // 0: none
}

// ShardDrill is one shard of a set drill.
type ShardDrill struct {
	Source string `json:"source"`
	Want   string `json:"digest"`
	Got    string `json:"restored_digest"`
	OK     bool   `json:"ok"`
}

// DrillReport is the outcome of DrillSet.
type DrillReport struct {
	Set     string       `json:"set"`
	Cluster string       `json:"cluster"`
	Digest  string       `json:"digest"`
	Union   string       `json:"restored_union_digest"`
	Shards  []ShardDrill `json:"shards"`
	// RTOSeconds is the time until every shard's scratch server served its
	// restored data (fetch, verify, write, load), in parallel with none.
	RTOSeconds          float64 `json:"rto_seconds"`
	RTOObjectiveSeconds float64 `json:"rto_objective_seconds,omitempty"`
	OK                  bool    `json:"ok"`
	Detail              string  `json:"detail,omitempty"`
}

// DrillSet proves a backup set restores: each shard's snapshot is written
// as the data dir of its own scratch server (restore.ToDir, as a real
// recovery to a directory; the server is a replica of an unreachable
// loopback address, so no key expires), which loads it; each server's
// DEBUG DIGEST must be the shard's and their union the set's. The servers
// stand for the nodes of a scratch cluster: together they hold every key
// of the set. The servers are stopped and their files removed at the end.
func DrillSet(ctx context.Context, repo storage.Backend, set *catalog.Set, o DrillOptions) (*DrillReport, error) {
	rep := &DrillReport{Set: set.ID, Cluster: set.Cluster, Digest: set.Digest, RTOObjectiveSeconds: o.RTOObjective.Seconds()}
	start := time.Now()
	sources, _, err := openShards(ctx, repo, set, o.Identities)
	if err != nil {
		return rep, err
	}
	var digests []string
	for i, sh := range set.Shards {
		got, err := drillShard(ctx, repo, sh, sources[i].src, o)
		if err != nil {
			return rep, fmt.Errorf("set %s, shard %s: %w", set.ID, sh.Source, err)
		}
		rep.Shards = append(rep.Shards, ShardDrill{Source: sh.Source, Want: sh.Digest, Got: got, OK: got == sh.Digest})
		digests = append(digests, got)
	}
	rep.RTOSeconds = time.Since(start).Seconds()
	if rep.Union, err = digest.Union(digests...); err != nil {
		return rep, err
	}
	rep.OK = rep.Union == set.Digest
	for _, s := range rep.Shards {
		if !s.OK {
			rep.OK = false
			rep.Detail += fmt.Sprintf("shard %s restored with digest %s, its snapshot says %s; ", s.Source, s.Got, s.Want)
		}
	}
	if rep.Union != set.Digest {
		rep.Detail += fmt.Sprintf("union digest %s, the set says %s; ", rep.Union, set.Digest)
	}
	if o.RTOObjective > 0 && rep.RTOSeconds > o.RTOObjective.Seconds() {
		rep.OK = false
		rep.Detail += fmt.Sprintf("RTO %.1fs over the objective %s; ", rep.RTOSeconds, o.RTOObjective)
	}
	if n := len(rep.Detail); n > 2 {
		rep.Detail = rep.Detail[:n-2]
	}
	return rep, nil
}

// drillShard restores one shard into a scratch server and returns its
// DEBUG DIGEST.
func drillShard(ctx context.Context, repo storage.Backend, sh catalog.SetShard, src restore.Source, o DrillOptions) (string, error) {
	bin := o.RedisServer
	if bin == "" {
		snap, err := catalog.ReadSnapshot(ctx, catalog.NamedSource(sh.Source).Backend(repo), sh.Snapshot)
		if err != nil {
			return "", err
		}
		b, err := scratch.Choose(ctx, "", scratch.NeedOf(snap.RDBVersion, snap.Source.RedisVersion, snap.Source.ValkeyVersion))
		if err != nil {
			return "", err
		}
		bin = b.Path
	}
	srv, err := scratch.New(o.TempDir, "redback-drill-"+sh.Source+"-")
	if err != nil {
		return "", err
	}
	defer srv.Close()
	if _, err := restore.ToDir(ctx, src, srv.Dir, restore.Options{}); err != nil {
		return "", err
	}
	if err := srv.Start(ctx, scratch.Options{Bin: bin}); err != nil {
		return "", err
	}
	if err := srv.Wait(ctx, nil); err != nil {
		return "", err
	}
	c := srv.Client(0)
	defer c.Close()
	return c.Do(ctx, "DEBUG", "DIGEST").Text()
}
