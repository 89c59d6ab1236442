package ship

import (
	"context"
	"fmt"

	"redback/internal/catalog"
)

// resetShrink is how much smaller (in keys) a new generation's base must be
// than the one before it for the source to count as reset: the new base
// holds fewer than 1/resetShrink of the previous base's keys.
const resetShrink = 10

// resetMinKeys is the smallest previous base a shrink is judged against.
const resetMinKeys = 100

// detectReset marks g as a reset when the source came back under a new
// replid with an empty (or drastically smaller) dataset than the newest
// earlier generation of the same source: a crash or a restart without
// persistence, or an empty data dir loaded by mistake. It returns that
// generation's newest point's generation id and why, or "" when g is an
// ordinary new generation. Repository errors skip the check (the
// generation is not marked; the caller logs nothing: the check is advice).
func (r *replStream) detectReset(ctx context.Context, g *catalog.Generation, keys int64) (prev *catalog.Generation, why string) {
	s := r.s
	gens, err := catalog.ListGenerations(ctx, s.Backend)
	if err != nil {
		return nil, ""
	}
	for _, x := range gens {
		if x.ID == g.ID || x.Source.Address != g.Source.Address || (x.Mode != "" && x.Mode != "replication") {
			continue
		}
		if prev == nil || x.Created.After(prev.Created) {
			prev = x
		}
	}
	if prev == nil || prev.ReplID == g.ReplID {
		return nil, ""
	}
	var prevKeys int64
	if base, err := catalog.ReadSnapshot(ctx, s.Backend, prev.BaseSnapshot); err == nil {
		prevKeys = base.Census.Keys
	}
	var cmds int64
	if segs, err := catalog.ListSegments(ctx, s.Backend, prev.ID); err == nil {
		for _, sg := range segs {
			cmds += sg.Commands
		}
	}
	switch {
	case keys == 0 && (prevKeys > 0 || cmds > 0):
		return prev, fmt.Sprintf("the source came back empty under a new replid; generation %s before it had %d keys in its base and %d commands in its log", prev.ID, prevKeys, cmds)
	case prevKeys >= resetMinKeys && keys*resetShrink < prevKeys:
		return prev, fmt.Sprintf("the source came back with %d keys under a new replid; generation %s before it had %d keys in its base", keys, prev.ID, prevKeys)
	}
	return nil, ""
}
