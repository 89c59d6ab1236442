package ship

import "context"

// A Source is what a Shipper ships from: the replication stream of a
// server (replStream, repl.go) or a multi-part AOF directory (aofTail,
// aofdir.go). The Shipper owns one pipeline (pipeline.go), builder →
// cutter → uploader, plus the heartbeat of an idle source; Run starts it,
// hands it to the Source that the exported fields describe and flushes it
// when the source returns. The source feeds the pipeline through its
// methods, each of which takes the pipeline's lock:
//
//   - generations: newGeneration when a base snapshot is stored (a full
//     sync, an AOF base) or a failover forks the history, resumeAt when a
//     restart continues a stored one (with its heartbeat), endGeneration
//     when one ends (a full resync, a rewrite), queued behind its segments;
//   - what it reads, in offset order: add for a command (its offset,
//     length, database and time; a time marker or control traffic is a
//     command the builder recognises), skip for stream bytes that are not
//     stored (an AOF's #TS annotations), bound for the times of what a
//     server re-sends after a reconnect;
//   - boundaries: cut (a rewrite, a full spool), interrupted (a lost
//     link), rollback of an unfinished MULTI, rewind after a segment
//     failed its check; spoolFull and waitDrained before reading on.
//
// The pipeline asks back only what it cannot know: whether idle stretches
// are stored as heartbeats at all, whether the source is streaming a
// generation right now (its heartbeat may then be stamped with the current
// time), and it tells the source what became durable (REPLCONF ACK with
// AckDurable). A source keeps its own state (the replication link, the
// files being read) under its own lock, taken after Shipper.mu when both
// are; Shipper.mu guards only the builder and what is cut from it.
type Source interface {
	// feed reads the source into the pipeline until ctx ends. It returns
	// an error only for what retrying cannot fix.
	feed(ctx context.Context) error
	// heartbeats reports whether an idle stretch (control traffic and time
	// markers only) is stored as the generation's heartbeat instead of a
	// segment.
	heartbeats() bool
	// live reports whether gen is being streamed at this moment: the
	// source sent nothing else until now. Called with Shipper.mu held.
	live(gen string) bool
	// durable says that gen is stored up to off.
	durable(gen string, off int64)
}

// source picks the Source the exported fields describe.
func (s *Shipper) source() Source {
	if s.AOFDir != "" {
		return &aofTail{s: s}
	}
	return &replStream{s: s}
}
