package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"redback/internal/storage"
)

// Key prefixes for log shipping (see docs/format.md).
const (
	GenerationPrefix = "gens/"      // gens/<gen>.json, gens/<gen>/segs/<start>-<end>.json
	SegmentDataPref  = "data/gens/" // data/gens/<gen>/<start>-<end>.aof.zst[.age]
)

// Generation is one unbroken replication history (one replid, contiguous
// offsets) starting at a base snapshot. Its manifest is rewritten (atomically)
// when the generation ends.
type Generation struct {
	Format       int       `json:"format"`
	ID           string    `json:"id"`
	ReplID       string    `json:"replid"`
	StartOffset  int64     `json:"start_offset"`  // offset of the base snapshot (+FULLRESYNC offset)
	BaseSnapshot string    `json:"base_snapshot"` // snapshot id; its manifest has Generation == ID
	Created      time.Time `json:"created"`
	Source       Source    `json:"source"`
	Ended        bool      `json:"ended"`
	EndOffset    int64     `json:"end_offset,omitempty"` // last durable offset when Ended
	EndReason    string    `json:"end_reason,omitempty"` // "full resync", "replid changed", "spool full", ...
	EndTime      time.Time `json:"end_time,omitzero"`
	// Source of the commands: "replication" (ship --source) or "aof" (ship --aof-dir).
	Mode string `json:"mode,omitempty"`
	// TimeSource says where the segments' times come from in mode "aof":
	// "aof" (the file's #TS annotations, second resolution) or "upload"
	// (when redback read the command: aof-timestamp-enabled was off).
	// Empty: replication receive times, or not known yet.
	TimeSource string `json:"time_source,omitempty"`
	// Reset marks a generation whose source came back (after a crash or a
	// restart without persistence) under a new replid with an empty or
	// drastically smaller dataset than the generation before it
	// (ResetFrom). The newest point of ResetFrom stays what
	// "restore --at latest" picks while this generation holds nothing
	// newer, and retention keeps ResetFrom while this one is the newest.
	Reset       bool   `json:"reset,omitempty"`
	ResetFrom   string `json:"reset_from,omitempty"`
	ResetReason string `json:"reset_reason,omitempty"`
	// Failovers are the primary changes the generation followed without a
	// full resync (PSYNC continued on the promoted replica): from Offset on
	// the history is the new primary's, under ReplID (which becomes the
	// generation's ReplID).
	Failovers []Failover `json:"failovers,omitempty"`
	// Parent, when set, is the generation whose history this one continues:
	// a failover promoted a replica that had not received the parent's log
	// after StartOffset. This generation's history is the parent's base
	// snapshot and log up to StartOffset, then its own segments; its
	// BaseSnapshot is the parent's.
	Parent string `json:"parent,omitempty"`
	// Fork, on a generation that ended at a failover that lost writes, says
	// where the new primary's history left this one: the commands after
	// Fork.Offset (up to EndOffset) were acknowledged by the old primary and
	// are not in the new primary's data.
	Fork *Fork `json:"fork,omitempty"`
}

// Failover is one primary change followed inside a generation.
type Failover struct {
	// Offset is the last offset of the old primary's history that the new
	// primary holds (its second_repl_offset - 1).
	Offset int64     `json:"offset"`
	ReplID string    `json:"replid"`         // the new primary's replication id
	Node   string    `json:"node,omitempty"` // the new primary (redacted URL)
	Time   time.Time `json:"time"`
}

// Fork records a failover that lost writes: the new primary took over at
// Offset, while the generation's log goes on to EndOffset with commands the
// old primary acknowledged and then lost. Child follows the new primary.
type Fork struct {
	Offset int64     `json:"offset"`
	Child  string    `json:"child"`
	ReplID string    `json:"replid"`
	Node   string    `json:"node,omitempty"`
	Time   time.Time `json:"time"`
}

// Segment is the manifest of one log segment: the commands of the
// replication stream in the offset range [Start, End) of its generation,
// stored as a valid AOF file. Offsets follow Redis: after +FULLRESYNC R O the
// replica's offset is O and every stream byte adds one; a segment that
// starts at Start holds the bytes Start+1 .. End.
//
// The AOF starts with "SELECT <DBAtStart>" and holds every command except
// control traffic (PING, REPLCONF), verbatim (the exact bytes the primary
// sent), with "#TS:<unix seconds>" annotation lines where the second
// changes. Index maps AOF positions to offsets and times:
// each Checkpoint says "the command that starts at AOFPos has replication
// offset Offset (its first byte is Offset+1) and was received at UnixMs";
// commands after a checkpoint and before the next one follow it byte for
// byte (offset = cp.Offset + (pos - cp.AOFPos)) and share its time. A new
// checkpoint is written at the start, whenever the receive time (ms)
// changes, after any skipped control command, and after any annotation line.
type Segment struct {
	Format     int          `json:"format"`
	Generation string       `json:"generation"`
	Start      int64        `json:"start"`
	End        int64        `json:"end"`
	FirstMs    int64        `json:"first_ms"` // receive time of the first command (unix ms)
	LastMs     int64        `json:"last_ms"`  // receive time of the last command
	Commands   int64        `json:"commands"` // replayable commands (MULTI/EXEC count as commands, SELECT does not)
	DBAtStart  int          `json:"db_at_start"`
	DBAtEnd    int          `json:"db_at_end"` // the db in effect after the last command (where a resumed stream continues)
	Object     Object       `json:"object"`
	Index      []Checkpoint `json:"index"`
}

// Checkpoint is one entry of a segment's index: [aof_pos, offset, unix_ms]
// or [aof_pos, offset, unix_ms, from_ms]. With from_ms (> 0) the commands
// from this checkpoint to the next ran at a time only known to lie in
// (from_ms, unix_ms]: they were re-sent by the primary after the shipper
// reconnected (or sent after a full sync's snapshot), so their receive time
// says nothing about when they ran. Readers older than the field read
// unix_ms, the upper bound.
type Checkpoint [4]int64

// MarshalJSON writes the 3-element form when FromMs is 0.
func (c Checkpoint) MarshalJSON() ([]byte, error) {
	n := 3
	if c[3] != 0 {
		n = 4
	}
	b := make([]byte, 0, 64)
	b = append(b, '[')
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, c[i], 10)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads the 3- or 4-element form.
func (c *Checkpoint) UnmarshalJSON(data []byte) error {
	var v []int64
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if len(v) != 3 && len(v) != 4 {
		return fmt.Errorf("index checkpoint %s: want 3 or 4 numbers", data)
	}
	*c = Checkpoint{}
	copy(c[:], v)
	return nil
}

// FromMs is the exclusive lower bound of the time of the commands from
// this checkpoint on (0: their time UnixMs is known).
func (c Checkpoint) FromMs() int64 { return c[3] }

// AOFPos is the byte position in the raw (uncompressed) AOF.
func (c Checkpoint) AOFPos() int64 { return c[0] }

// Offset is the replication offset before the command at AOFPos.
func (c Checkpoint) Offset() int64 { return c[1] }

// UnixMs is the receive time in unix milliseconds.
func (c Checkpoint) UnixMs() int64 { return c[2] }

// NewGenerationID returns a sortable generation id: UTC time + first 8
// characters of the replid.
func NewGenerationID(t time.Time, replID string) string {
	r := replID
	if len(r) > 8 {
		r = r[:8]
	}
	if r == "" {
		r = "noreplid"
	}
	return t.UTC().Format("20060102T150405.000Z") + "-" + r
}

// Quiet is a generation's heartbeat, one small object rewritten in place
// (gens/<gen>/quiet.json): the stream of generation Generation from From
// (the end of its stored segments when written) to Offset held control
// traffic only (the primary's PING and REPLCONF, time markers), and the
// source sent nothing more until UnixMs. An idle source cuts no segment
// for that traffic: ship rewrites this record instead (every --heartbeat
// while idle, and when it stops), so the newest durable point of the
// generation is Offset at UnixMs when the stored log reaches From (see
// Covers). A restarted shipper resumes at the end of the stored
// segments and takes UnixMs as the last time known there. Records written
// before From existed hold no From (0) and Offset at the stored end.
type Quiet struct {
	Format     int    `json:"format"`
	Generation string `json:"generation"`
	From       int64  `json:"from"`
	Offset     int64  `json:"offset"`
	UnixMs     int64  `json:"unix_ms"`
}

// Covers reports whether q extends generation gen's log that ends (stored
// contiguously) at end: the stretch from end to q.Offset is control
// traffic only, so the state at q.Offset is the state at end.
func (q *Quiet) Covers(gen string, end int64) bool {
	return q != nil && q.Generation == gen && q.From <= end && end <= q.Offset
}

// ReadQuiet reads generation gen's Quiet record; nil, nil when there is
// none.
func ReadQuiet(ctx context.Context, b storage.Backend, gen string) (*Quiet, error) {
	var q Quiet
	key := QuietKey(gen)
	if err := GetJSON(ctx, b, key, &q); err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	if q.Generation != gen || q.From > q.Offset {
		return nil, &ManifestError{Key: key, Err: fmt.Errorf("generation %q, offsets %d-%d: not a heartbeat of %s", q.Generation, q.From, q.Offset, gen)}
	}
	return &q, nil
}

// QuietKey is the key of generation gen's Quiet record.
func QuietKey(gen string) string { return GenerationPrefix + gen + "/quiet.json" }

// GenerationKey is the manifest key of generation gen.
func GenerationKey(gen string) string { return GenerationPrefix + gen + ".json" }

// SegmentPrefix is the prefix of generation gen's segment manifests.
func SegmentPrefix(gen string) string { return GenerationPrefix + gen + "/segs/" }

// segName is "<start:016x>-<end:016x>".
func segName(start, end int64) string { return fmt.Sprintf("%016x-%016x", start, end) }

// SegmentKey is the manifest key of a segment.
func SegmentKey(gen string, start, end int64) string {
	return SegmentPrefix(gen) + segName(start, end) + ".json"
}

// segmentRange parses a segment manifest key of generation gen (as
// SegmentKey makes it) into its offsets.
func segmentRange(gen, key string) (start, end int64, ok bool) {
	name, found := strings.CutPrefix(key, SegmentPrefix(gen))
	if !found {
		return 0, 0, false
	}
	name, found = strings.CutSuffix(name, ".json")
	a, z, cut := strings.Cut(name, "-")
	if !found || !cut || len(a) != 16 || len(z) != 16 {
		return 0, 0, false
	}
	s, err1 := strconv.ParseInt(a, 16, 64)
	e, err2 := strconv.ParseInt(z, 16, 64)
	return s, e, err1 == nil && err2 == nil && e >= s
}

// SegmentDataKey is the data object key of a segment.
func SegmentDataKey(gen string, start, end int64, encrypted bool) string {
	k := SegmentDataPref + gen + "/" + segName(start, end) + ".aof.zst"
	if encrypted {
		k += ".age"
	}
	return k
}

// ReadGeneration loads generation gen's manifest.
func ReadGeneration(ctx context.Context, b storage.Backend, gen string) (*Generation, error) {
	if !ValidID(gen) {
		return nil, fmt.Errorf("generation id %q is not valid", gen)
	}
	var g Generation
	key := GenerationKey(gen)
	if err := GetJSON(ctx, b, key, &g); err != nil {
		return nil, err
	}
	if g.Format > FormatVersion {
		return nil, &ManifestError{Key: key, Err: fmt.Errorf("format %d is newer than this redback understands", g.Format)}
	}
	if g.ID != gen {
		return nil, &ManifestError{Key: key, Err: fmt.Errorf("id %q does not match its key", g.ID)}
	}
	return &g, nil
}

// ListGenerations returns every generation, oldest first.
func ListGenerations(ctx context.Context, b storage.Backend) ([]*Generation, error) {
	var ids []string
	err := b.List(ctx, GenerationPrefix, func(oi storage.ObjectInfo) error {
		name := strings.TrimPrefix(oi.Key, GenerationPrefix)
		if strings.HasSuffix(name, ".json") && !strings.Contains(name, "/") {
			ids = append(ids, strings.TrimSuffix(name, ".json"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list generations: %w", err)
	}
	gens := make([]*Generation, 0, len(ids))
	for _, id := range ids {
		g, err := ReadGeneration(ctx, b, id)
		if err != nil {
			return nil, err
		}
		gens = append(gens, g)
	}
	return gens, nil
}

// ListSegments returns generation gen's segment manifests in offset order.
func ListSegments(ctx context.Context, b storage.Backend, gen string) ([]*Segment, error) {
	set, err := readManifests(ctx, b, SegmentPrefix(gen), false)
	if err != nil {
		return nil, fmt.Errorf("list segments of %s: %w", gen, err)
	}
	segs := make([]*Segment, 0, len(set.list))
	for _, m := range set.list {
		k := m.info.Key
		if m.err != nil {
			return nil, m.err
		}
		var s Segment
		if err := decodeManifest(k, m.data, &s); err != nil {
			return nil, err
		}
		if s.Generation != gen || s.End < s.Start || !strings.HasPrefix(s.Object.Key, SegmentDataPref) {
			return nil, &ManifestError{Key: k, Err: errors.New("inconsistent segment manifest")}
		}
		segs = append(segs, &s)
	}
	return segs, nil
}

// Gap is a hole (or overlap, when Overlap) between two consecutive segments.
type Gap struct {
	Generation string
	From, To   int64
	Overlap    bool
}

// Contiguity reports gaps and overlaps between consecutive segments (sorted
// by Start) and between the generation start and its first segment.
func Contiguity(g *Generation, segs []*Segment) []Gap {
	var gaps []Gap
	at := g.StartOffset
	for _, s := range segs {
		switch {
		case s.Start > at:
			gaps = append(gaps, Gap{Generation: g.ID, From: at, To: s.Start})
		case s.Start < at:
			gaps = append(gaps, Gap{Generation: g.ID, From: s.Start, To: at, Overlap: true})
		}
		if s.End > at {
			at = s.End
		}
	}
	return gaps
}

// LogAnchor is the snapshot synthesized from generation g's log that its
// restorable log starts from when the segments before it are gone
// (retention dropped them: see Prune), or nil when g's log starts at its
// base. segs are g's segments sorted by Start. It applies only when the
// log's head is missing (the first segment starts after g.StartOffset);
// the anchor is then the verified snapshot synthesized from g's log (an
// element of snaps with FromLog) whose offset a remaining segment covers,
// the one that started first (the widest window in time), the smaller
// offset of equals. Gaps before its offset are no loss: it holds the state
// there.
func LogAnchor(g *Generation, segs []*Segment, snaps []*Snapshot) *Snapshot {
	if len(segs) == 0 || segs[0].Start <= g.StartOffset {
		return nil
	}
	var best *Snapshot
	for _, s := range snaps {
		if !s.FromLog() || !s.Verified || s.Generation != g.ID {
			continue
		}
		off := s.Source.Offset
		covered := false
		for _, sg := range segs {
			covered = covered || (sg.Start <= off && off <= sg.End)
		}
		if !covered {
			continue
		}
		if best == nil || s.StartTime.Before(best.StartTime) ||
			(s.StartTime.Equal(best.StartTime) && off < best.Source.Offset) {
			best = s
		}
	}
	return best
}

// GapsAfter returns the gaps that end after offset off (those before it are
// covered by a snapshot there: a LogAnchor).
func GapsAfter(gaps []Gap, off int64) []Gap {
	var out []Gap
	for _, g := range gaps {
		if g.To > off {
			out = append(out, g)
		}
	}
	return out
}
