package ship

import "context"

// replStream is the Source of a server's replication stream: one replica
// link at a time (see loop), the watchers that follow a failover and the
// publisher of time markers.
type replStream struct {
	s *Shipper
}

// feed runs the connection loop, with the marker publisher and the
// watcher of the sentinels (or of Follow) beside it, until ctx ends.
func (r *replStream) feed(ctx context.Context) error {
	s := r.s
	tickCtx, tickStop := context.WithCancel(ctx)
	tickDone := make(chan struct{})
	go func() {
		defer close(tickDone)
		if s.Tick > 0 {
			s.publishTicks(tickCtx)
		}
	}()

	s.wake = make(chan struct{}, 1)
	watchCtx, watchStop := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		switch {
		case s.Follow != nil:
			s.watchFollow(watchCtx)
		case s.Source.IsSentinel():
			s.watchSentinels(watchCtx)
		}
	}()

	err := s.loop(ctx)
	watchStop()
	<-watchDone
	tickStop()
	<-tickDone
	return err
}

// heartbeats: an idle primary's PINGs and time markers are stored as the
// generation's heartbeat.
func (r *replStream) heartbeats() bool { return true }

// live reports whether a connection streams gen now. Called with
// Shipper.mu held.
func (r *replStream) live(gen string) bool {
	return r.s.conn != nil && r.s.sessGen == gen
}

// durable ACKs off on the link of gen with AckDurable, at once, so WAIT
// returns as soon as the write is stored.
func (r *replStream) durable(gen string, off int64) {
	s := r.s
	if s.Ack != AckDurable {
		return
	}
	s.mu.Lock()
	if s.conn != nil && s.sessGen == gen {
		s.conn.SetAckOffset(off)
		s.conn.AckNow()
	}
	s.mu.Unlock()
}
