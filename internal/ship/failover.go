package ship

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"redback/internal/catalog"
	"redback/internal/redisurl"
	"redback/internal/replica"
	"redback/internal/resp"
	"redback/internal/respconn"
	"redback/internal/sentinel"
)

// errSwitch ends a session because the sentinels (or Follow) named
// another primary.
var errSwitch = errors.New("the sentinels named a new primary")

// errNotPrimary: the node a Sentinel URL resolved to is not (or no longer)
// a primary; the loop asks the sentinels again after a back-off.
var errNotPrimary = errors.New("the node the sentinels named is not a primary (yet)")

// Node is the redacted address of the server the shipper follows ("" until
// it connected).
func (s *Shipper) Node() string {
	if p := s.node.Load(); p != nil {
		return *p
	}
	return ""
}

// watchSentinels follows the sentinels of a redis+sentinel:// source until
// ctx ends: on +switch-master to another node, and whenever a subscription
// starts (a switch may have been missed while no sentinel was reachable),
// it ends the current session so the loop reconnects to the primary the
// sentinels name.
func (r *replStream) watchSentinels(ctx context.Context) {
	s := r.s
	sentinel.Watch(ctx, s.Source, func(e sentinel.Event) {
		addr := e.Addr
		switch e.Reason {
		case "+switch-master":
		case "subscribed":
			a, err := sentinel.Primary(ctx, s.Source)
			if err != nil {
				return
			}
			addr = a
		default:
			s.Log.Debug("sentinel subscription lost; moving on to the next sentinel", "sentinel", e.Sentinel, "reason", e.Reason)
			return
		}
		cur := s.Node()
		if cur == "" || cur == s.Source.Node(addr).Redacted() {
			return
		}
		s.Log.Info("the sentinels name a new primary; following it", "node", s.Source.Node(addr).Redacted(), "was", cur, "sentinel", e.Sentinel, "event", e.Reason)
		r.switchNode()
	})
}

// switchNode ends the current session (errSwitch) and the back-off, so the
// loop reconnects to the node resolve names now.
func (r *replStream) switchNode() {
	r.mu.Lock()
	if r.sessCancel != nil {
		r.sessCancel(errSwitch)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// resolve names the node a session replicates from: Follow's, the primary
// the sentinels name, or Source itself.
func (r *replStream) resolve(ctx context.Context) (*redisurl.URL, error) {
	s := r.s
	if s.Follow != nil {
		return s.Follow(ctx)
	}
	return sentinel.Resolve(ctx, s.Source, sentinel.Options{})
}

// watchFollow asks Follow every FollowEvery (2 s if 0) until ctx ends and
// ends the current session when it names another node than the one
// followed, so the loop reconnects there (a failover inside a cluster
// shard). Errors are ignored: the current link goes on.
func (r *replStream) watchFollow(ctx context.Context) {
	s := r.s
	every := s.FollowEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		u, err := s.Follow(ctx)
		cur := s.Node()
		if err != nil || cur == "" || cur == u.Redacted() {
			continue
		}
		s.Log.Info("the shard has a new primary; following it", "node", u.Redacted(), "was", cur)
		r.switchNode()
	}
}

// resumePoint decides where to ask PSYNC to continue gen on node. Normally
// that is the processed offset. When node is a promoted replica whose
// history left gen's before that offset (its previous replication id is
// gen's and its second_repl_offset is at or below the processed offset),
// the commands after the take-over were lost by the failover: resumePoint
// returns the take-over offset as fork (else -1), and PSYNC continues from
// there. For a Sentinel source, a node that reports role:slave is refused
// with errNotPrimary. takeover is the offset where node's own history
// began (second_repl_offset - 1) when node took over from gen's replid,
// else the processed offset.
func (r *replStream) resumePoint(ctx context.Context, conn *replica.Conn, gen *catalog.Generation) (pos replica.Position, fork, takeover int64, err error) {
	s := r.s
	pos = replica.Position{ReplID: gen.ReplID, Offset: s.processed()}
	takeover = pos.Offset
	text, err := conn.Info(ctx, "replication")
	if err != nil {
		var re resp.Error
		if errors.As(err, &re) {
			return pos, -1, takeover, nil // INFO renamed or not permitted: PSYNC decides
		}
		return pos, -1, takeover, err
	}
	in := respconn.ParseInfo(text)
	if s.Source.IsSentinel() && in.Replica {
		return pos, -1, takeover, errNotPrimary
	}
	if in.ReplID == gen.ReplID || in.ReplID2 != gen.ReplID || in.SecondReplOffset <= 0 {
		return pos, -1, takeover, nil
	}
	takeover = in.SecondReplOffset - 1
	if pos.Offset > takeover && takeover >= gen.StartOffset {
		pos.Offset = takeover
		return pos, takeover, takeover, nil
	}
	return pos, -1, takeover, nil
}

// followFailover keeps gen after "+CONTINUE <new replid>": the new primary
// continues its history, so the generation goes on under the new
// replication id and records the failover.
func (r *replStream) followFailover(ctx context.Context, st *state, node *redisurl.URL, newID string, at int64) error {
	s := r.s
	g := *st.gen
	g.Failovers = append(slices.Clone(g.Failovers), catalog.Failover{Offset: at, ReplID: newID, Node: node.Redacted(), Time: time.Now().UTC()})
	g.ReplID = newID
	if err := s.retryStorage(ctx, "record a failover in generation "+g.ID, func() error {
		return catalog.PutJSON(ctx, s.Backend, catalog.GenerationKey(g.ID), &g)
	}); err != nil {
		return err
	}
	st.gen = &g
	s.failovers.Add(1)
	s.Log.Info("followed a failover without a full resync (PSYNC continued on the new primary)", "gen", g.ID, "offset", at, "node", node.Redacted(), "replid", newID)
	return nil
}

// forkGeneration follows a failover that lost writes: the new primary took
// over at offset fork, while the log of gen goes on to the processed offset
// with commands the old primary acknowledged and then lost. gen ends there
// with a Fork record; a child generation (Parent gen, starting at fork,
// sharing gen's base snapshot) follows the new primary from fork on.
func (r *replStream) forkGeneration(ctx context.Context, st *state, node *redisurl.URL, newID string, fork int64) error {
	s := r.s
	parent := *st.gen
	now := time.Now()
	child := &catalog.Generation{
		Format:       catalog.FormatVersion,
		ID:           catalog.NewGenerationID(now, newID),
		ReplID:       newID,
		StartOffset:  fork,
		BaseSnapshot: parent.BaseSnapshot,
		Created:      now.UTC(),
		Source:       parent.Source,
		Mode:         "replication",
		Parent:       parent.ID,
	}
	if child.ID == parent.ID {
		return fmt.Errorf("fork generation %s: same id as its parent", child.ID)
	}
	// The child is written first: should the shipper stop before the
	// parent's end is stored, a restart resumes the newer (the child) and
	// ends the parent; the lost range still follows from the child's
	// Parent and StartOffset.
	if err := s.retryStorage(ctx, "start generation "+child.ID, func() error {
		return catalog.PutJSON(ctx, s.Backend, catalog.GenerationKey(child.ID), child)
	}); err != nil {
		return err
	}
	end := s.processed()
	parent.Fork = &catalog.Fork{Offset: fork, Child: child.ID, ReplID: newID, Node: node.Redacted(), Time: now.UTC()}
	s.endGeneration(&parent, end, fmt.Sprintf("failover to %s: the new primary took over at offset %d, so the commands after it (to offset %d) were lost; generation %s follows the new primary",
		node.Redacted(), fork, end, child.ID))
	// A promoted primary re-selects its database before its first write
	// (it resets the replicas' selected db), so the db at the fork is moot.
	s.newGeneration(child.ID, fork, "")
	s.failovers.Add(1)
	st.gen = child
	s.Log.Warn("a failover lost writes: the log after the take-over is kept, marked lost, and a new generation follows the new primary",
		"gen", parent.ID, "offset", fork, "lost_to", end, "child", child.ID, "node", node.Redacted())
	return nil
}
