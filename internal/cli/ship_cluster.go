package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"filippo.io/age"

	"redback/internal/ops"
	"redback/internal/pack"
	"redback/internal/progress"
	"redback/internal/redisurl"
	"redback/internal/ship"
	"redback/internal/storage"
)

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
	cs := &ops.ClusterShipper{Repo: base, Seed: u, Cluster: name, Log: e.log, Lease: ops.LeasedShards(base, u, e.log),
		NewShipper: func(repo storage.Backend) *ship.Shipper { return newShipper(e, o, u, po, ids, spool, repo) }}
	e.log.Info("shipping a cluster", "seed", u.Redacted(), "repo", base.Location(), "cluster", name, "ack", o.ack, "interval", o.interval.String())
	states := cs.Shards
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
	err = cs.Run(ctx)
	stopStatus()
	wg.Wait()
	out := states()
	if o.json {
		enc := json.NewEncoder(e.Out)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(struct {
			Cluster string                `json:"cluster"`
			Shards  []ops.ShardShipStatus `json:"shards"`
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
