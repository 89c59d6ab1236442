package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/clusterset"
	"redback/internal/pack"
	"redback/internal/progress"
	"redback/internal/redisurl"
	"redback/internal/ship"
	"redback/internal/storage"
)

// shardShipJSON is one shard in the --json output of a cluster's ship.
type shardShipJSON struct {
	clusterset.ShardState
	ship.Stats
}

// runClusterShip ships every shard of the cluster u belongs to.
func runClusterShip(ctx context.Context, e *env, o *shipOpts, u *redisurl.URL, po pack.Options, ids []age.Identity, spool int64) error {
	name, err := clusterName(e, o.name, u)
	if err != nil {
		return err
	}
	base, err := openRepo(ctx, e, o.repo)
	if err != nil {
		return err
	}
	defer base.Close()
	var mu sync.Mutex
	shippers := map[string]*ship.Shipper{}
	sp := &clusterset.Shipping{Repo: base, Seed: u, Cluster: name, Log: e.log}
	sp.Ship = func(ctx context.Context, source string, follow clusterset.FollowFunc) error {
		src, err := catalog.InitSource(ctx, base, source, u.Redacted())
		if err != nil {
			return err
		}
		return leased(ctx, e, src.Backend(base), source, func(ctx context.Context, repo storage.Backend) error {
			s := newShipper(e, o, u, po, ids, spool, repo)
			s.Follow = follow
			s.Log = e.log.With("source", source)
			mu.Lock()
			shippers[source] = s
			mu.Unlock()
			return s.Run(ctx)
		})
	}
	e.log.Info("shipping a cluster", "seed", u.Redacted(), "repo", base.Location(), "cluster", name, "ack", o.ack, "interval", o.interval.String())
	states := func() []shardShipJSON {
		var out []shardShipJSON
		for _, sh := range sp.Shards() {
			mu.Lock()
			s := shippers[sh.Source]
			mu.Unlock()
			j := shardShipJSON{ShardState: sh}
			if s != nil {
				j.Stats = s.Stats()
			}
			out = append(out, j)
		}
		return out
	}
	var wg sync.WaitGroup
	statusCtx, stopStatus := context.WithCancel(ctx)
	if !o.json && progress.IsTerminal(e.Err) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statusLine(statusCtx, e, func() string {
				line := ""
				for _, st := range states() {
					line += fmt.Sprintf("%s lag %s/%.1fs  ", st.Source, humanBytes(st.LagBytes), st.LagSeconds)
				}
				return line
			})
		}()
	}
	err = sp.Run(ctx)
	stopStatus()
	wg.Wait()
	out := states()
	if o.json {
		enc := json.NewEncoder(e.Out)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(struct {
			Cluster string          `json:"cluster"`
			Shards  []shardShipJSON `json:"shards"`
		}{name, out}); jerr != nil && err == nil {
			err = jerr
		}
		return err
	}
	for _, st := range out {
		fmt.Fprintf(e.Out, "shipped %s (slots %s, primary %s): generation %s, durable offset %d, %d segments, %d reconnects, %d failovers followed\n",
			st.Source, slotsText(st.Slots), st.Primary, st.Generation, st.DurableOffset, st.SegmentsUploaded, st.Reconnects, st.Failovers)
	}
	return err
}
