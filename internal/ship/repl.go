package ship

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"redback/internal/catalog"
	"redback/internal/redisurl"
	"redback/internal/replica"
	"redback/internal/respconn"
	"redback/internal/snapshot"
)

// replStream is the Source of a server's replication stream: one replica
// link at a time (see loop), the watchers that follow a failover and the
// publisher of time markers.
type replStream struct {
	s *Shipper

	mu         sync.Mutex // guards conn, sessGen, sessCancel
	conn       *replica.Conn
	sessGen    string
	sessCancel context.CancelCauseFunc // ends the current session (errSwitch)

	tickNode atomic.Pointer[redisurl.URL] // the node markers are published to
	wake     chan struct{}                // a new primary was named: end the back-off
	// warnedInfo: the source's offset could not be read (said once).
	warnedInfo bool
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
			r.publishTicks(tickCtx)
		}
	}()

	r.wake = make(chan struct{}, 1)
	watchCtx, watchStop := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		switch {
		case s.Follow != nil:
			r.watchFollow(watchCtx)
		case s.Source.IsSentinel():
			r.watchSentinels(watchCtx)
		}
	}()

	err := r.loop(ctx)
	watchStop()
	<-watchDone
	tickStop()
	<-tickDone
	return err
}

// heartbeats: an idle primary's PINGs and time markers are stored as the
// generation's heartbeat.
func (r *replStream) heartbeats() bool { return true }

// live reports whether a connection streams gen now.
func (r *replStream) live(gen string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn != nil && r.sessGen == gen
}

// durable ACKs off on the link of gen with AckDurable, at once, so WAIT
// returns as soon as the write is stored.
func (r *replStream) durable(gen string, off int64) {
	if r.s.Ack != AckDurable {
		return
	}
	r.mu.Lock()
	if r.conn != nil && r.sessGen == gen {
		r.conn.SetAckOffset(off)
		r.conn.AckNow()
	}
	r.mu.Unlock()
}

// state is what the connection loop knows about the current generation.
type state struct {
	gen *catalog.Generation // nil: the next sync is a full one
	// why the last connection ended (for a generation's end reason)
	lastErr error
}

// loop connects, syncs and streams until ctx ends, reconnecting with a
// capped back-off.
func (r *replStream) loop(ctx context.Context) error {
	s := r.s
	var st state
	if err := s.retryStorage(ctx, "read the repository", func() error {
		var err error
		st.gen, err = r.resume(ctx)
		return err
	}); err != nil {
		return nil // ctx ended
	}
	backoff := 100 * time.Millisecond
	var lastLog time.Time
	badRepeats := 0
	for ctx.Err() == nil {
		if errors.Is(st.lastErr, ErrSpoolFull) {
			if !s.waitDrained(ctx) {
				break
			}
		}
		streamed, err := r.session(ctx, &st)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, replica.ErrReplicationRefused) || errors.Is(err, replica.ErrAuth) {
			return fmt.Errorf("ship from %s: %w", s.Source.Redacted(), err)
		}
		if bad := (*badSegment)(nil); errors.As(err, &bad) && st.gen != nil {
			if badRepeats++; badRepeats >= 3 {
				s.endGeneration(st.gen, bad.start, "a built segment failed its index check 3 times: "+bad.err.Error())
				st.gen = nil
				badRepeats = 0
			}
		}
		st.lastErr = err
		s.reconnects.Add(1)
		s.setStat(func(x *Stats) { x.Connected = false; x.LastError = err.Error() })
		if streamed {
			backoff = 100 * time.Millisecond
		}
		switch {
		case errors.Is(err, ErrSpoolFull):
			s.Log.Error("spool full: storage is not keeping up; disconnected from the source until the spool is stored",
				"spool_bytes", s.SpoolSize, "offset", s.processed())
		case errors.Is(err, errSwitch):
			continue // reconnect to the new primary at once
		case time.Since(lastLog) >= 10*time.Second || streamed:
			s.Log.Warn("replication link lost; reconnecting", "err", err, "backoff", backoff.String())
			lastLog = time.Now()
		}
		if errors.Is(err, errNotPrimary) {
			// A failover is under way: ask the sentinels again soon.
			backoff = min(backoff, time.Second)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		case <-r.wake:
			t.Stop()
		}
		backoff = min(backoff*2, 10*time.Second)
	}
	return nil
}

// session runs one connection. streamed reports whether commands arrived.
func (r *replStream) session(ctx context.Context, st *state) (streamed bool, err error) {
	s := r.s
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer func() {
		if errors.Is(context.Cause(ctx), errSwitch) {
			err = fmt.Errorf("%w (%v)", errSwitch, err)
		}
	}()
	node, err := r.resolve(ctx)
	if err != nil {
		return false, err
	}
	addr := node.Redacted()
	s.node.Store(&addr)
	r.tickNode.Store(node)
	r.mu.Lock()
	r.sessCancel = cancel
	r.mu.Unlock()
	conn, err := replica.Dial(ctx, node, replica.Config{Logger: s.Log, SharedArgs: true})
	if err != nil {
		return false, err
	}
	defer func() {
		r.mu.Lock()
		r.conn, r.sessGen, r.sessCancel = nil, "", nil
		r.mu.Unlock()
		conn.Close()
	}()
	if s.Ack == AckDurable {
		// Until the durable offset of this stream is known, ACK nothing: a
		// primary only ever raises a replica's ACKed offset, so an early
		// high value would satisfy WAIT for writes not yet stored.
		conn.SetAckOffset(0)
	}
	s.rewind() // found by the cutter or the last cut of the previous connection
	var pos replica.Position
	fork, takeover := int64(-1), int64(0)
	if st.gen != nil {
		if pos, fork, takeover, err = r.resumePoint(ctx, conn, st.gen); err != nil {
			return false, err
		}
	}
	lo := s.known() // re-sent commands ran after the last time stored
	syncAt := time.Now()
	res, err := conn.Sync(ctx, pos)
	if err != nil {
		return false, err
	}
	switch {
	case res.Full:
		lo = syncAt.UnixMilli() // commands after the sync's offset ran after the fork
		if st.gen != nil {
			reason := fmt.Sprintf("full resync: %s (replid %s) did not continue this history at offset %d", addr, res.Position.ReplID, pos.Offset)
			if st.lastErr != nil {
				reason += " after: " + st.lastErr.Error()
			}
			g := st.gen
			if fork >= 0 {
				f := *g
				f.Fork = &catalog.Fork{Offset: fork, ReplID: res.Position.ReplID, Node: addr, Time: time.Now().UTC()}
				g = &f
				reason += fmt.Sprintf("; the commands after offset %d were lost by the failover", fork)
			}
			s.endGeneration(g, s.processed(), reason)
			st.gen = nil
		}
		g, err := r.startGeneration(ctx, res)
		if err != nil {
			return false, err
		}
		st.gen = g
	case fork >= 0:
		if err := r.forkGeneration(ctx, st, node, res.Position.ReplID, fork); err != nil {
			return false, err
		}
	case res.NewReplID != "":
		if err := r.followFailover(ctx, st, node, res.NewReplID, takeover); err != nil {
			return false, err
		}
		conn.SetDB(s.db())
	default:
		conn.SetDB(s.db())
		s.Log.Info("resumed the log", "gen", st.gen.ID, "offset", pos.Offset)
	}
	r.boundResent(ctx, node, lo)
	gen := st.gen.ID
	r.mu.Lock()
	r.conn, r.sessGen = conn, gen
	r.mu.Unlock()
	if s.Ack == AckDurable {
		// Only now is the base snapshot (after a full sync) stored: ACKing
		// its offset earlier would satisfy WAIT for writes that a full disk
		// or an outage could still lose.
		d := s.Stats()
		if d.Generation == gen {
			conn.SetAckOffset(d.DurableOffset)
		} else {
			conn.SetAckOffset(st.gen.StartOffset)
		}
	}
	s.setStat(func(x *Stats) { x.Connected = true; x.LastError = "" })
	for {
		cmd, err := conn.Next(ctx)
		if err != nil {
			s.interrupted(ctx.Err() != nil)
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("the source closed the replication link: %w", err)
			}
			return streamed, err
		}
		streamed = true
		now := time.Now()
		if s.pending()+cmd.Len > s.SpoolSize {
			// A command (or transaction) larger than the spool: a value
			// the server accepted (up to its proto-max-bulk-len) never
			// forces a resync. Once what waits for storage is stored, the
			// spool grows for this one unit.
			s.queueCutNow()
			s.Log.Info("a command larger than the spool: storing what waits first, then it alone", "bytes", cmd.Len, "spool_bytes", s.SpoolSize)
			if !s.waitDrained(ctx) {
				return streamed, ctx.Err()
			}
		} else if s.spoolFull(cmd.Len) {
			// Full only while something waits for storage.
			s.cut()
			return streamed, ErrSpoolFull
		}
		_, oversized := s.add(cmd, now, now.UnixMilli())
		if bad := s.rewind(); bad != nil {
			return streamed, bad
		}
		s.setStat(func(x *Stats) { x.PrimaryOffset = cmd.End() })
		if oversized && !s.waitDrained(ctx) {
			// The oversized unit is stored before anything else is read,
			// so the spool is back to its bound for what follows.
			return streamed, ctx.Err()
		}
	}
}

// startGeneration stores the full sync's RDB as the base snapshot of a new
// generation and writes the generation manifest.
func (r *replStream) startGeneration(ctx context.Context, res *replica.SyncResult) (*catalog.Generation, error) {
	s := r.s
	now := time.Now()
	id := catalog.NewGenerationID(now, res.Position.ReplID)
	s.Log.Info("full sync: storing the base snapshot of a new generation", "gen", id, "offset", res.Position.Offset)
	snap, err := snapshot.Store(ctx, res.RDB, snapshot.Options{
		Backend:    s.Backend,
		Pack:       s.Pack,
		Method:     "ship",
		Source:     catalog.Source{Address: s.Source.Redacted(), ReplID: res.Position.ReplID, Offset: res.Position.Offset},
		Log:        s.Log,
		Generation: id,
		ID:         catalog.NewSnapshotID(now),
	})
	if err != nil {
		return nil, fmt.Errorf("store the base snapshot of generation %s: %w", id, err)
	}
	g := &catalog.Generation{
		Format:       catalog.FormatVersion,
		ID:           id,
		ReplID:       res.Position.ReplID,
		StartOffset:  res.Position.Offset,
		BaseSnapshot: snap.ID,
		Created:      now.UTC(),
		Source:       snap.Source,
		Mode:         "replication",
	}
	if prev, why := r.detectReset(ctx, g, snap.Census.Keys); prev != nil {
		g.Reset, g.ResetFrom, g.ResetReason = true, prev.ID, why
		s.resets.Add(1)
		s.Log.Warn("the source came back empty: marking the new generation as a reset; restore --at latest keeps picking the newest point before it until the new generation holds commands",
			"gen", id, "previous", prev.ID, "reason", why)
	}
	if err := catalog.PutJSON(ctx, s.Backend, catalog.GenerationKey(id), g); err != nil {
		return nil, fmt.Errorf("start generation %s: %w", id, err)
	}
	s.newGeneration(id, g.StartOffset, snap.ID)
	s.Log.Info("generation started", "gen", id, "offset", g.StartOffset, "key", catalog.SnapshotManifestKey(snap.ID))
	return g, nil
}

// resume finds where a previous shipper of this source stopped: the newest
// generation of the source that has not ended, and the end of its stored
// segments. Older open generations of the source are ended. It returns nil
// when the next sync must be a full one.
func (r *replStream) resume(ctx context.Context) (*catalog.Generation, error) {
	s := r.s
	gens, err := catalog.ListGenerations(ctx, s.Backend)
	if err != nil {
		return nil, err
	}
	addr := s.Source.Redacted()
	var open []*catalog.Generation
	for _, g := range gens {
		if !g.Ended && g.Source.Address == addr && (g.Mode == "" || g.Mode == "replication") {
			open = append(open, g)
		}
	}
	if len(open) == 0 {
		return nil, nil
	}
	for i, g := range open {
		end, db, dbKnown, lastMs, err := s.storedEnd(ctx, g)
		if err != nil {
			return nil, err
		}
		if i < len(open)-1 {
			if err := s.endNow(ctx, g, end, "superseded by a newer generation"); err != nil {
				return nil, err
			}
			continue
		}
		if !dbKnown {
			// Without the database at the end we cannot continue the
			// stream correctly; start afresh instead of guessing.
			if err := s.endNow(ctx, g, end, "restart: the database at the resume point is unknown"); err != nil {
				return nil, err
			}
			return nil, nil
		}
		// The stream re-sent from end ran after lastMs, and after the
		// heartbeat stored after end (the last stop, or an idle stretch):
		// the primary re-sends its control traffic first.
		q, err := catalog.ReadQuiet(ctx, s.Backend, g.ID)
		if err != nil || !q.Covers(g.ID, end) {
			q = nil
		}
		s.resumeAt(g, end, db, lastMs, q)
		s.Log.Info("resuming generation", "gen", g.ID, "offset", end)
		return g, nil
	}
	return nil, nil
}

// boundResent reads the source's replication offset right after a sync
// (INFO replication on a connection of its own) and bounds the time of
// every command up to it: they ran after lo and before the reply, whenever
// the stream delivers them (the backlog re-sent after a reconnect, the
// writes buffered while a full sync's snapshot was sent). Without INFO
// (an ACL that forbids it) those commands keep their receive time, which
// may be later than when they ran; ship says so once.
func (r *replStream) boundResent(ctx context.Context, node *redisurl.URL, lo int64) {
	s := r.s
	off, hi, err := sourceOffset(ctx, node)
	if err != nil {
		if !r.warnedInfo {
			r.warnedInfo = true
			s.Log.Warn("cannot read the source's replication offset (INFO replication): commands re-sent after a reconnect are stamped with their receive time, which may be later than when they ran; allow INFO for exact point-in-time restores", "err", err)
		}
		return
	}
	s.bound(off, lo, hi)
}

// sourceOffset is the source's master_repl_offset and the time (unix ms)
// its reply arrived.
func sourceOffset(ctx context.Context, node *redisurl.URL) (int64, int64, error) {
	c, err := respconn.Dial(ctx, node, respconn.Options{Timeout: 10 * time.Second})
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	v, err := c.Do("INFO", "replication")
	if err != nil {
		return 0, 0, err
	}
	hi := time.Now().UnixMilli()
	in := respconn.ParseInfo(string(v.Str))
	if !strings.Contains(string(v.Str), "master_repl_offset:") {
		return 0, 0, errors.New("INFO replication has no master_repl_offset")
	}
	// 0 is an answer: a primary whose first replica is this one and that
	// has written nothing since its snapshot has nothing buffered.
	return in.ReplOffset, hi, nil
}
