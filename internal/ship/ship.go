package ship

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/redisurl"
	"redback/internal/storage"
)

// Defaults for Shipper fields left at zero.
const (
	DefaultInterval     = time.Second
	DefaultSpoolSize    = 24 << 20
	DefaultSegmentSize  = 4 << 20
	DefaultFlushTimeout = 60 * time.Second
	DefaultHeartbeat    = 30 * time.Second
)

// idleSegment is how much of the stream an idle stretch (control traffic
// and time markers only) may cover before it is cut into a segment after
// all: a restarted shipper resumes at the stored end, which the primary's
// backlog (1 MiB by default) must still hold. At a PING and a time marker
// every 10 s that is a segment every ~10 hours.
const idleSegment = 256 << 10

// Ack modes: what the shipper reports to the primary with REPLCONF ACK.
const (
	AckProcessed = "processed" // the offset received and processed
	AckDurable   = "durable"   // the offset stored in the repository
)

// ErrSpoolFull is the reason a connection is dropped when storage does not
// keep up and the spool reached its size.
var ErrSpoolFull = errors.New("spool full: storage is not keeping up")

// Shipper ships one source (a server's replication stream, or an AOF
// directory: see Source) into a repository as log segments. Set the
// exported fields, then call Run; Stats and Pinned may be called
// concurrently with Run. A Shipper runs one Run at a time; after Run
// returns it may be called again (it resumes from the repository).
type Shipper struct {
	// Source is the primary (or a replica) to replicate from.
	Source *redisurl.URL
	// Backend is the repository.
	Backend storage.Backend
	// Pack chooses compression and encryption of stored objects.
	Pack pack.Options
	// Identities, when set, let a restarted shipper read its last
	// encrypted segment (only needed for manifests without db_at_end).
	Identities []age.Identity
	// Interval is the target RPO: what arrives is stored within about
	// Interval (see cutter).
	Interval time.Duration
	// Ack is AckProcessed (default) or AckDurable.
	Ack string
	// SpoolSize bounds the bytes received but not yet stored.
	SpoolSize int64
	// SegmentSize cuts a segment once it holds this many raw bytes.
	SegmentSize int64
	// FlushTimeout bounds the upload of what is spooled after ctx ends.
	FlushTimeout time.Duration
	// Heartbeat is how often the heartbeat of an idle source
	// (catalog.Quiet, gens/<gen>/quiet.json, rewritten in place) is
	// updated: the stream of an idle source (the primary's PING, time
	// markers) is not cut into segments; the heartbeat makes it durable.
	// The first one of an idle stretch is written after Interval.
	Heartbeat time.Duration
	// Log receives events; nil discards.
	Log *slog.Logger
	// AOFDir, instead of Source, tails a multi-part AOF directory (see
	// aofdir.go); PinDir holds the hard links that keep its files (see
	// DefaultPinDir).
	AOFDir string
	PinDir string
	// Tick is how often a time marker is published to the source while
	// writes flow (see publishTicks); 0: no markers.
	Tick time.Duration
	// Follow, when set, names the node to replicate from at each
	// connection (a cluster shard's primary; Source then only lends its
	// credentials and TLS settings). It is asked again every FollowEvery
	// while streaming: another node ends the session, and the next one
	// continues the history there with PSYNC (see followFailover).
	Follow      func(ctx context.Context) (*redisurl.URL, error)
	FollowEvery time.Duration

	src  Source                 // what Run ships from (see source)
	node atomic.Pointer[string] // the server followed (redacted)

	// The pipeline: mu guards the builder and what is cut from it (b,
	// badSeg, liveUntil, quiet, quietAt, lastCut); a Source keeps its own
	// state under its own lock, taken after mu when both are.
	mu sync.Mutex
	b  builder
	// badSeg is set when a built segment failed its check (queueCut);
	// nothing from its start on is stored until the stream is re-read.
	badSeg *badSegment
	// liveUntil is when Run's context ended while a connection was
	// streaming (zero otherwise); guarded by mu.
	liveUntil time.Time
	// quiet is the last heartbeat stored (or read at resume), quietAt
	// when; guarded by mu.
	quiet   catalog.Quiet
	quietAt time.Time
	// lastCut is when the last segment was queued; guarded by mu.
	lastCut time.Time

	st struct {
		sync.Mutex
		Stats
	}
	reconnects, generations, uploaded, resets atomic.Int64
	failovers                                 atomic.Int64
	up                                        *uploader
	base                                      atomic.Pointer[string] // base snapshot of the current generation
}

// Pinned reports whether snapshot id must be kept because the generation
// being shipped starts from it (for catalog.Policy.Pinned).
func (s *Shipper) Pinned(id string) (bool, string) {
	if b := s.base.Load(); b != nil && *b == id {
		return true, "base snapshot of the generation being shipped"
	}
	return false, ""
}

// Stats is a snapshot of a shipper's state, for metrics.
type Stats struct {
	Connected  bool
	Generation string
	// DurableOffset is the end of what is stored in the repository.
	DurableOffset int64
	// PrimaryOffset is the end of what was received from the stream.
	PrimaryOffset int64
	// LagBytes is PrimaryOffset - DurableOffset.
	LagBytes int64
	// LagSeconds is the age of the oldest command not yet durable.
	LagSeconds float64
	// SegmentsUploaded, Reconnects and Generations count over the
	// Shipper's life (across Runs), so they only grow.
	SegmentsUploaded int64
	Reconnects       int64
	Generations      int64
	// Resets counts the generations marked as a reset (the source came
	// back empty under a new replid; catalog.Generation.Reset).
	Resets int64
	// SpoolBytes are received but not yet stored.
	SpoolBytes int64
	// Node is the server followed (redacted URL): for a redis+sentinel://
	// source, the primary the sentinels named.
	Node string
	// Failovers counts the primary changes followed without a full resync
	// (PSYNC continued on the promoted replica, with or without a fork).
	Failovers int64
	// LastError is the last connection or storage problem ("" when fine).
	LastError string
}

// Stats returns the current state.
func (s *Shipper) Stats() Stats {
	s.st.Lock()
	st := s.st.Stats
	s.st.Unlock()
	st.Reconnects = s.reconnects.Load()
	st.Generations = s.generations.Load()
	st.Resets = s.resets.Load()
	st.SegmentsUploaded = s.uploaded.Load()
	st.Failovers = s.failovers.Load()
	st.Node = s.Node()
	s.mu.Lock()
	up := s.up
	pend := s.b.pending()
	var building time.Time
	if s.b.seg != nil && !s.b.idle() {
		building = s.b.seg.received
	}
	s.mu.Unlock()
	if up != nil {
		st.SpoolBytes = up.spool.Load() + pend
		if t, ok := up.oldest(); ok {
			building = t
		}
	}
	if st.PrimaryOffset > st.DurableOffset {
		st.LagBytes = st.PrimaryOffset - st.DurableOffset
	}
	if !building.IsZero() {
		st.LagSeconds = time.Since(building).Seconds()
	}
	return st
}

func (s *Shipper) setStat(f func(*Stats)) {
	s.st.Lock()
	f(&s.st.Stats)
	s.st.Unlock()
}

func (s *Shipper) defaults() error {
	if (s.Source == nil) == (s.AOFDir == "") || s.Backend == nil {
		return errors.New("ship: Backend and one of Source or AOFDir are required")
	}
	if s.Interval <= 0 {
		s.Interval = DefaultInterval
	}
	if s.SpoolSize <= 0 {
		s.SpoolSize = DefaultSpoolSize
	}
	if s.SegmentSize <= 0 {
		s.SegmentSize = DefaultSegmentSize
	}
	if s.SegmentSize > s.SpoolSize/2 {
		s.SegmentSize = max(s.SpoolSize/2, 1)
	}
	if s.FlushTimeout <= 0 {
		s.FlushTimeout = DefaultFlushTimeout
	}
	if s.Heartbeat <= 0 {
		s.Heartbeat = DefaultHeartbeat
	}
	switch s.Ack {
	case "":
		s.Ack = AckProcessed
	case AckProcessed, AckDurable:
	default:
		return fmt.Errorf("ship: ack mode %q: want %s or %s", s.Ack, AckProcessed, AckDurable)
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.Pack.Concurrency == 0 {
		s.Pack.Concurrency = 1
	}
	return nil
}

// spoolBuffers is how many segment buffers a full spool holds (and the
// uploader keeps for reuse): its segments and the one being built.
func spoolBuffers(spool, segment int64) int { return int(spool/segment) + 1 }

// Run ships until ctx ends, then cuts the segment being built, stores
// everything spooled (bounded by FlushTimeout) and returns nil. It returns
// an error for problems that retrying cannot fix (replication refused,
// authentication) or when the final flush failed.
func (s *Shipper) Run(ctx context.Context) error {
	if err := s.defaults(); err != nil {
		return err
	}
	workers := min(max(s.Backend.Properties().Connections, 1), 2)
	up := newUploader(s.Backend, s.Pack, workers, s.Log)
	up.maxFree = int(2 * s.SegmentSize)
	up.minFree = int(s.SegmentSize)
	// Every segment buffer of a full spool can be recycled: through a
	// backlog no segment's memory becomes garbage, so the heap stays near
	// the spool instead of twice it (the GC's headroom over live memory).
	up.free = make(chan []byte, spoolBuffers(s.SpoolSize, s.SegmentSize))
	up.onUploaded = func() { s.uploaded.Add(1) }
	up.onDurable = s.durable
	up.onError = func(err error) {
		s.setStat(func(st *Stats) {
			if err == nil {
				st.LastError = ""
			} else {
				st.LastError = "storage: " + err.Error()
			}
		})
	}
	s.mu.Lock()
	if s.src == nil {
		// Kept across Runs, as the source's own state is (what it has
		// said once, the node it publishes markers to).
		s.src = s.source()
	}
	src := s.src
	s.up = up
	s.b = builder{recycled: up.free, bufSize: int(s.SegmentSize) + 64<<10}
	s.mu.Unlock()

	upCtx, upCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer upCancel()
	upDone := make(chan error, 1)
	go func() { upDone <- up.run(upCtx) }()

	cutCtx, cutStop := context.WithCancel(ctx)
	cutDone := make(chan struct{})
	go func() { defer close(cutDone); s.cutter(cutCtx) }()

	err := src.feed(ctx)

	cutStop()
	<-cutDone
	s.mu.Lock()
	s.b.rollback()
	quiet := catalog.Quiet{Format: catalog.FormatVersion, Generation: s.b.gen, From: s.b.end, Offset: s.b.end}
	if src.heartbeats() && s.b.idle() && s.badSeg == nil {
		// The idle stretch is not stored as a segment: the heartbeat
		// below records it (once everything before it is stored).
		quiet.From = s.b.seg.start
		s.b.drop()
	} else {
		s.queueCut()
	}
	switch {
	case s.badSeg != nil || s.b.inMulti:
	case !s.liveUntil.IsZero():
		quiet.UnixMs = max(s.liveUntil.UnixMilli(), s.b.known())
	case quiet.Offset > quiet.From:
		quiet.UnixMs = s.b.known() // the link was down: quiet until the last item read
	}
	s.liveUntil = time.Time{}
	bad := s.badSeg
	s.badSeg = nil
	s.mu.Unlock()
	if bad != nil && err == nil {
		err = fmt.Errorf("ship: %w (the next start resumes from offset %d)", bad, bad.start)
	}
	up.close()
	timer := time.NewTimer(s.FlushTimeout)
	defer timer.Stop()
	var flushErr error
	select {
	case flushErr = <-upDone:
	case <-timer.C:
		upCancel()
		flushErr = <-upDone
		flushErr = fmt.Errorf("flush the spool within %s: %w", s.FlushTimeout, flushErr)
	}
	if flushErr == nil && quiet.UnixMs > 0 && quiet.Generation != "" {
		// The stream was read until the stop and everything is stored:
		// the source was quiet from the durable end until then. A restart
		// reads it as the last time known, so what the primary re-sends
		// then is bounded from here, not from the last command.
		if st := s.Stats(); st.Generation == quiet.Generation && quiet.From <= st.DurableOffset && st.DurableOffset <= quiet.Offset {
			qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := catalog.PutJSON(qctx, s.Backend, catalog.QuietKey(quiet.Generation), &quiet); err != nil {
				s.Log.Warn("could not record where the log stopped", "err", err)
			} else {
				s.setStat(func(x *Stats) { x.DurableOffset = quiet.Offset })
			}
			cancel()
		}
	}
	if flushErr != nil {
		flushErr = fmt.Errorf("ship: not everything received was stored (the next start resumes from the durable offset %d): %w",
			s.Stats().DurableOffset, flushErr)
	}
	s.setStat(func(st *Stats) { st.Connected = false })
	return errors.Join(err, flushErr)
}
