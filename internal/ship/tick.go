package ship

import (
	"context"
	"errors"
	"strings"
	"time"

	"redback/internal/catalog"
	"redback/internal/redisurl"
	"redback/internal/resp"
	"redback/internal/respconn"
)

// DefaultTick is how often ship publishes a time marker (ship --tick, the
// agent's ship.tick) while writes flow.
const DefaultTick = 100 * time.Millisecond

// idleTick is how often a marker is published while the source is idle
// (the last marker came back through the stream and no command followed
// it): as often as a primary PINGs its replicas by default, so an idle
// source does not cause more segments than before markers.
const idleTick = 10 * time.Second

// tickDue decides whether the marker publisher sends a marker now. It
// publishes every period while commands flow, while the replication link
// is down or the last marker sent has not come back through the stream
// (the link is stalled or behind: the markers then wait in the primary's
// backlog and bound the times of what it re-sends), and every idleTick
// otherwise.
type tickDue struct {
	sent      int64     // time of the last marker published (unix ms)
	sentAt    time.Time // when it was published
	cmdsAtPub int64     // builder.cmdsSeen then
	acked     int64     // time of the last marker whose reply came back, 0 after an error
}

func (d *tickDue) due(now time.Time, linked bool, seen, cmds int64) bool {
	return !linked || d.sent == 0 || seen < d.sent || cmds != d.cmdsAtPub || now.Sub(d.sentAt) >= idleTick
}

// publishTicks publishes a time marker (catalog.TickChannel) on a
// connection of its own to the node being followed, every s.Tick, until ctx
// ends. A server that refuses it (an ACL without PUBLISH, a cluster node
// that does not own the channel's slot) turns the markers off with one log
// line; shipping never fails for them. A lost connection is dialed again at
// the next marker.
func (r *replStream) publishTicks(ctx context.Context) {
	s := r.s
	t := time.NewTicker(s.Tick)
	defer t.Stop()
	var (
		c       *respconn.Conn
		on      *redisurl.URL
		command string
		d       tickDue
	)
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		node := r.tickNode.Load()
		if node == nil {
			continue // no connection to the source yet
		}
		seen, cmds := s.seen()
		s.st.Lock()
		linked := s.st.Connected
		s.st.Unlock()
		now := time.Now()
		if !d.due(now, linked, seen, cmds) {
			continue
		}
		if c != nil && on.Redacted() != node.Redacted() {
			c.Close() // the followed node changed (a failover)
			c = nil
			d.acked = 0
		}
		if c == nil {
			var err error
			if c, err = respconn.Dial(ctx, node, respconn.Options{Timeout: 5 * time.Second, ReadBuffer: 4 << 10, WriteBuffer: 4 << 10}); err != nil {
				c = nil
				s.Log.Debug("time markers: cannot connect; trying again at the next one", "err", err)
				continue
			}
			on, command = node, "PUBLISH"
			if in, err := c.Info(); err == nil && in.Cluster {
				command = "SPUBLISH" // the marker stays in the node's shard
			}
		}
		ms := max(now.UnixMilli(), d.sent+1)
		_ = c.SetDeadline(now.Add(5 * time.Second))
		// After: the previous marker's reply came back on this connection
		// before ms was read, so that PUBLISH ran by ms.
		_, err := c.Do(command, catalog.TickChannel, catalog.Tick{Ms: ms, After: d.acked}.Message())
		if err != nil {
			var re resp.Error
			if errors.As(err, &re) {
				s.Log.Warn("time markers off: the source refused "+command+" on "+catalog.TickChannel+
					"; shipping goes on, but commands re-sent after a reconnect carry a time interval instead of a time (allow it with +"+
					strings.ToLower(command)+" &__redback__:*, see redback acl)", "err", re.Error())
				return
			}
			c.Close()
			c = nil
			d.acked = 0 // it may still run, later than the next marker's time
			continue
		}
		d.sent, d.sentAt, d.cmdsAtPub, d.acked = ms, now, cmds, ms
	}
}
