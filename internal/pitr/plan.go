package pitr

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/restore"
	"redback/internal/storage"
)

// ErrTargetNotCovered is wrapped by a *CoverageError: no generation can
// restore the target.
var ErrTargetNotCovered = errors.New("the target is outside every recoverable window")

// ErrGap is wrapped by a *GapError: the log needed to reach the target has a
// hole.
var ErrGap = errors.New("the log has a gap")

// Kind says what a Target names.
type Kind int

// Target kinds.
const (
	KindTime          Kind = iota + 1 // the state after the last command received at or before Time
	KindBeforeCommand                 // the state just before the first command matching Command
	KindOffset                        // the state at replication offset Offset (the last command boundary at or before it)
	KindLatest                        // the newest durable point: the end of the contiguous log of the generation that reaches furthest
)

// CommandMatch selects a command of the log.
type CommandMatch struct {
	// Name is the command name, case-insensitive (FLUSHALL, FLUSHDB, DEL,
	// UNLINK, SWAPDB, any other).
	Name string
	// After: only commands received at or after this time match (zero:
	// from the oldest generation on).
	After time.Time
	// KeyPattern, when set, is a Redis glob that one of the command's key
	// arguments must match (see KeyArgs). Commands without keys
	// (FLUSHALL, SWAPDB, ...) never match a pattern.
	KeyPattern string
}

// Target is where to restore to. Build it with AtTime, BeforeCommand,
// AtOffset or Latest.
type Target struct {
	Kind    Kind
	Time    time.Time    // KindTime
	Command CommandMatch // KindBeforeCommand
	Offset  int64        // KindOffset
	// Generation restricts the search to one generation ("" means any;
	// needed for an offset that several generations hold).
	Generation string
	// Skip lists offsets of commands to leave out of the replay (surgical
	// undo). The rest of the log is replayed as it was, so later commands
	// may depend on the skipped one: opt-in, and the CLI warns.
	Skip []int64
	// Uncertain decides a KindTime target that falls inside an interval
	// where commands ran at times only known within it (see
	// catalog.Checkpoint): "" refuses with an *UncertainError,
	// UncertainEarliest restores the state before those commands,
	// UncertainLatest the state after them.
	Uncertain string
}

// Values of Target.Uncertain.
const (
	UncertainEarliest = "earliest"
	UncertainLatest   = "latest"
)

// ErrUncertain is wrapped by an *UncertainError.
var ErrUncertain = errors.New("the time falls inside an interval where the log only bounds when commands ran")

// UncertainError refuses a time target inside an uncertain interval: the
// commands of (From, To] ran at times only known to lie in it, so the state
// at the target cannot be known. From and To are the nearest exact points.
type UncertainError struct {
	Target     string
	Generation string
	From, To   time.Time
	Commands   int64 // commands whose time is only bounded by the interval
	// ByOffset is set when the interval began before the generation's
	// base snapshot (From is then the base's time): the primary buffered
	// the commands while sending the snapshot, so no time before them is
	// restorable and the state before them is reached with --to-offset
	// BeforeOffset instead.
	ByOffset     bool
	BeforeOffset int64
}

func (e *UncertainError) Error() string {
	before := "--at " + fmtTime(e.From)
	if e.ByOffset {
		before = fmt.Sprintf("--to-offset %d (the source buffered them while sending the base snapshot, taken at %s)", e.BeforeOffset, fmtTime(e.From))
	}
	return fmt.Sprintf("%s: %v: in generation %s, %d commands ran at times only known to lie between %s and %s (the source re-sent them after the shipper reconnected, or sent them after a full sync's snapshot); the nearest exact points are %s (before them) and --at %s (after them); or pass --uncertain earliest or --uncertain latest to restore to one of those",
		e.Target, ErrUncertain, e.Generation, e.Commands, fmtTime(e.From), fmtTime(e.To), before, fmtTime(e.To))
}
func (e *UncertainError) Unwrap() error { return ErrUncertain }

// AtTime is the state after the last command received at or before t.
func AtTime(t time.Time) Target { return Target{Kind: KindTime, Time: t} }

// BeforeCommand is the state just before the first command matching m.
func BeforeCommand(m CommandMatch) Target { return Target{Kind: KindBeforeCommand, Command: m} }

// AtOffset is the state at replication offset off.
func AtOffset(off int64) Target { return Target{Kind: KindOffset, Offset: off} }

// Latest is the newest durable point: the whole contiguous log of the
// restorable generation (with Generation: of that one) whose log reaches
// the latest time.
func Latest() Target { return Target{Kind: KindLatest} }

func (t Target) String() string {
	switch t.Kind {
	case KindTime:
		return "time " + fmtTime(t.Time)
	case KindBeforeCommand:
		s := "before the first " + strings.ToUpper(t.Command.Name)
		if t.Command.KeyPattern != "" {
			s += fmt.Sprintf(" on a key matching %q", t.Command.KeyPattern)
		}
		if !t.Command.After.IsZero() {
			s += " received at or after " + fmtTime(t.Command.After)
		}
		return s
	case KindOffset:
		return fmt.Sprintf("offset %d", t.Offset)
	case KindLatest:
		return "the newest durable point"
	}
	return "no target"
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// Options are the inputs of NewPlan besides the target.
type Options struct {
	// Identities decrypt encrypted segments and snapshots.
	Identities []age.Identity
}

// Command is one command of the log.
type Command struct {
	Generation string    `json:"generation"`
	Offset     int64     `json:"offset"` // replication offset before the command
	Size       int64     `json:"size"`   // bytes it occupies in the stream
	Time       time.Time `json:"time"`   // receive time (ms); with TimeFrom: the latest it can have run
	// TimeFrom, when set, says the command's time is only bounded: it ran
	// after TimeFrom and at or before Time.
	TimeFrom      time.Time `json:"time_from,omitzero"`
	DB            int       `json:"db"`
	Name          string    `json:"name"` // upper-cased
	Args          [][]byte  `json:"-"`    // all arguments, the name included
	InTransaction bool      `json:"in_transaction"`
	// Lost marks a command the old primary acknowledged and a failover
	// then lost: it is in the log of a generation after the offset where a
	// promoted replica took over (a child generation follows the new
	// primary from there), so it is not in the new primary's data.
	Lost bool `json:"lost,omitempty"`
	// Text is the command for display (arguments cut), set on the
	// commands a Plan reports (Match, Skipped); Log leaves it empty.
	Text string `json:"command,omitempty"`
}

func (c *Command) String() string {
	return fmt.Sprintf("%s %s (offset %d, generation %s, db %d)", Display(c.Args, 64, 8), c.When(), c.Offset, c.Generation, c.DB)
}

// When is "at TIME", or "between FROM and TIME" for a bounded time.
func (c *Command) When() string {
	if !c.TimeFrom.IsZero() {
		return "between " + fmtTime(c.TimeFrom) + " and " + fmtTime(c.Time)
	}
	return "at " + fmtTime(c.Time)
}

// Display renders args for humans: each argument quoted when it is not
// plain, cut to maxArg bytes, at most maxArgs arguments.
func Display(args [][]byte, maxArg, maxArgs int) string {
	var sb strings.Builder
	for i, a := range args {
		if i == maxArgs {
			fmt.Fprintf(&sb, " ... (%d more)", len(args)-i)
			break
		}
		if i > 0 {
			sb.WriteByte(' ')
		}
		cut := len(a) > maxArg
		if cut {
			a = a[:maxArg]
		}
		if plain(a) {
			sb.Write(a)
		} else {
			fmt.Fprintf(&sb, "%q", a)
		}
		if cut {
			sb.WriteString("...")
		}
	}
	return sb.String()
}

func plain(a []byte) bool {
	if len(a) == 0 {
		return false
	}
	for _, c := range a {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '\\' {
			return false
		}
	}
	return true
}

// Window is what one generation can restore.
type Window struct {
	Generation string `json:"generation"`
	ReplID     string `json:"replid"`
	Base       string `json:"base_snapshot"`
	// From is the oldest time a restore --at reaches: the base snapshot
	// (the start of its transfer; the primary forked before it), or, when
	// commands the primary buffered during that transfer ran at times only
	// bounded by an interval holding it, the end of that interval (the
	// base itself is then reached with --to-offset FromOffset).
	From       time.Time `json:"from"`
	FromOffset int64     `json:"from_offset"`
	// To is the newest durable point reachable without a gap: the last
	// command of the contiguous log (receive time) and the offset after it.
	To        time.Time `json:"to"`
	ToOffset  int64     `json:"to_offset"`
	Segments  int       `json:"segments"`
	Commands  int64     `json:"commands"`
	Ended     bool      `json:"ended"`
	EndReason string    `json:"end_reason,omitempty"`
	// Reset, ResetFrom and ResetReason: the generation is a reset (see
	// catalog.Generation.Reset).
	Reset       bool          `json:"reset,omitempty"`
	ResetFrom   string        `json:"reset_from,omitempty"`
	ResetReason string        `json:"reset_reason,omitempty"`
	Gaps        []catalog.Gap `json:"gaps,omitempty"`
	// Uncertain are the stretches of the window where commands ran at
	// times only known within an interval (see catalog.Checkpoint): a
	// time inside one is refused unless --uncertain picks a side.
	Uncertain []Interval `json:"uncertain,omitempty"`
	// Problem, when set, says why nothing of this generation can be
	// restored (its base snapshot is missing or unreadable).
	Problem string `json:"problem,omitempty"`
	// Parent is the generation whose history this one continues after a
	// failover that lost writes (its window starts at the parent's base).
	Parent string `json:"parent,omitempty"`
	// LostAfter, when set, is the offset after which this generation's log
	// was lost by a failover: the window ends there (restore the lost
	// commands only by naming the generation with --generation).
	LostAfter int64 `json:"lost_after,omitempty"`
	// LogTrimmed: the log before FromOffset is gone (retention dropped it
	// once a snapshot synthesized from the log held that state, see
	// catalog.LogAnchor): the window starts at that snapshot, Base.
	LogTrimmed bool `json:"log_trimmed,omitempty"`
}

func (w *Window) String() string {
	if w.Problem != "" {
		return fmt.Sprintf("generation %s: not restorable: %s", w.Generation, w.Problem)
	}
	s := fmt.Sprintf("generation %s: from %s (offset %d) to %s (offset %d)", w.Generation, fmtTime(w.From), w.FromOffset, fmtTime(w.To), w.ToOffset)
	if w.LogTrimmed {
		s += fmt.Sprintf(" (from snapshot %s, synthesized from the log: retention dropped the log before it)", w.Base)
	}
	for _, g := range w.Gaps {
		if !g.Overlap {
			s += fmt.Sprintf(", log missing between offsets %d and %d", g.From, g.To)
		}
	}
	for _, u := range w.Uncertain {
		s += ", " + u.String()
	}
	return s
}

// Interval is a stretch of a window where commands ran at times only known
// to lie in (From, To]: the source re-sent them after the shipper
// reconnected (or sent them after a full sync's snapshot).
type Interval struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

func (u Interval) String() string {
	return fmt.Sprintf("times uncertain between %s and %s", fmtTime(u.From), fmtTime(u.To))
}

// uncertain merges the bounded intervals of the chain's checkpoints.
func (gi *genInfo) uncertain() []Interval {
	var out []Interval
	for _, l := range gi.chain {
		for _, cp := range l.seg.Index {
			if cp.FromMs() <= 0 {
				continue
			}
			from, to := msTime(cp.FromMs()), msTime(cp.UnixMs())
			if n := len(out); n > 0 && !from.After(out[n-1].To) {
				if to.After(out[n-1].To) {
					out[n-1].To = to
				}
				continue
			}
			out = append(out, Interval{From: from, To: to})
		}
	}
	return out
}

// firstExact returns the earliest moment of a window starting at fromMs
// (the base's time) that a time target restores, and the uncertain
// intervals ivs inside the window. Right after a full sync the source
// sends what it buffered while the snapshot was transferred (time markers,
// the SELECT before them, writes): those ran after the fork at times only
// bounded by an interval that can hold the base's time, and a time inside
// it is refused. The window then starts where that interval ends, the
// first moment whose state is known again; intervals that end at or
// before the start are not part of the window.
func firstExact(fromMs int64, ivs []Interval) (int64, []Interval) {
	var in []Interval
	for _, iv := range ivs {
		if lo, hi := iv.From.UnixMilli(), iv.To.UnixMilli(); lo < fromMs && fromMs < hi {
			fromMs = hi
		}
	}
	for _, iv := range ivs {
		if iv.To.UnixMilli() > fromMs {
			in = append(in, iv)
		}
	}
	return fromMs, in
}

// CoverageError says that no generation covers a target, naming each
// generation's window.
type CoverageError struct {
	Target  string
	Reason  string
	Windows []Window
}

func (e *CoverageError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %v", e.Target, ErrTargetNotCovered)
	if e.Reason != "" {
		sb.WriteString(" (" + e.Reason + ")")
	}
	if len(e.Windows) == 0 {
		sb.WriteString("; the repository holds no log generation (run `redback ship`)")
	}
	for i := range e.Windows {
		sb.WriteString("; " + e.Windows[i].String())
	}
	return sb.String()
}
func (e *CoverageError) Unwrap() error { return ErrTargetNotCovered }

// GapError says that segments are missing between the base and the target.
type GapError struct {
	Target     string
	Generation string
	From, To   int64 // the missing offsets
	Newest     time.Time
}

func (e *GapError) Error() string {
	return fmt.Sprintf("%s: %v: generation %s is missing the log between offsets %d and %d, so nothing after offset %d (%s) can be restored from it",
		e.Target, ErrGap, e.Generation, e.From, e.To, e.From, fmtTime(e.Newest))
}
func (e *GapError) Unwrap() error { return ErrGap }

// link is one segment of a chain; commands before from were replayed from
// an earlier, overlapping segment, and commands at or after to belong to
// another history (a failover forked it there).
type link struct {
	seg      *catalog.Segment
	from, to int64
}

// noLimit is a link's to when the whole segment counts.
const noLimit = math.MaxInt64

// genInfo is a generation with its segments, its contiguous chain and base.
type genInfo struct {
	g       *catalog.Generation
	segs    []*catalog.Segment // its own segments
	chain   []link             // for a child: the parent's chain up to the fork, then its own
	start   int64              // offset of the base (the parent's for a child)
	end     int64              // offset after the chain
	gap     *catalog.Gap       // first hole after the chain
	base    *catalog.Snapshot
	baseErr error
	// anchored: the log before start is gone and base is the snapshot
	// synthesized from the log at start (catalog.LogAnchor).
	anchored bool
	// lost is the offset after which the log was lost by a failover (a
	// child generation follows the new primary from there), -1 if none.
	lost int64
	// quietEnd and quietMs: the generation's heartbeat extends the chain
	// (catalog.Quiet): the stream from end to quietEnd held control
	// traffic only, and the source was quiet until quietMs (0: none).
	quietEnd, quietMs int64
}

// clipped returns gi as the new primary's history sees it: the chain ends
// at the fork when a failover lost the log after it.
func (gi *genInfo) clipped() *genInfo {
	if gi.lost < 0 || gi.durableEnd() <= gi.lost {
		return gi
	}
	c := *gi
	c.chain = nil
	for _, l := range gi.chain {
		if l.from >= gi.lost {
			break
		}
		l.to = min(l.to, gi.lost)
		c.chain = append(c.chain, l)
	}
	c.end, c.gap, c.quietEnd, c.quietMs = gi.lost, nil, 0, 0
	return &c
}

func (gi *genInfo) fromMs() int64 {
	if gi.base == nil {
		return 0
	}
	// The base holds the data as of the primary's fork, which happened
	// before the snapshot's transfer began (StartTime); every later write
	// is in the log with a later receive time.
	ms := gi.base.StartTime.UnixMilli()
	if gi.anchored {
		// A snapshot synthesized from the log holds the state at its
		// offset, every command of which was stored before it started;
		// the first segment kept begins before that offset.
		return ms
	}
	if len(gi.chain) > 0 && gi.chain[0].seg.FirstMs < ms {
		ms = gi.chain[0].seg.FirstMs
	}
	return ms
}

func (gi *genInfo) toMs() int64 {
	return max(gi.chainToMs(), gi.quietMs)
}

// chainToMs is the time of the last item of the stored chain.
func (gi *genInfo) chainToMs() int64 {
	if n := len(gi.chain); n > 0 {
		return max(gi.chain[n-1].seg.LastMs, gi.fromMs())
	}
	return gi.fromMs()
}

// durableEnd is the newest durable offset: the chain's end, or the
// heartbeat's when it extends the chain.
func (gi *genInfo) durableEnd() int64 { return max(gi.end, gi.quietEnd) }

func (gi *genInfo) lastMsAll() int64 {
	var ms int64
	for _, s := range gi.segs {
		ms = max(ms, s.LastMs)
	}
	return ms
}

func (gi *genInfo) window() Window {
	w := Window{Generation: gi.g.ID, ReplID: gi.g.ReplID, Base: gi.g.BaseSnapshot, FromOffset: gi.start,
		ToOffset: gi.durableEnd(), Segments: len(gi.chain), Ended: gi.g.Ended, EndReason: gi.g.EndReason,
		Reset: gi.g.Reset, ResetFrom: gi.g.ResetFrom, ResetReason: gi.g.ResetReason,
		Gaps: catalog.Contiguity(gi.g, gi.segs), Parent: gi.g.Parent}
	if gi.anchored {
		w.Base, w.LogTrimmed, w.Gaps = gi.base.ID, true, catalog.GapsAfter(w.Gaps, gi.start)
	}
	if gi.lost >= 0 {
		w.LostAfter = gi.lost
	}
	for _, l := range gi.chain {
		w.Commands += l.seg.Commands
	}
	if gi.baseErr != nil {
		w.Problem = gi.baseErr.Error()
		return w
	}
	from, ivs := firstExact(gi.fromMs(), gi.uncertain())
	w.From, w.To, w.Uncertain = msTime(from), msTime(max(gi.toMs(), from)), ivs
	if gi.g.Ended && gi.gap == nil && gi.g.EndOffset > gi.durableEnd() && gi.lost < 0 {
		w.Gaps = append(w.Gaps, catalog.Gap{Generation: gi.g.ID, From: gi.durableEnd(), To: gi.g.EndOffset})
	}
	return w
}

func loadGens(ctx context.Context, b storage.Backend) ([]*genInfo, error) {
	gens, err := catalog.ListGenerations(ctx, b)
	if err != nil {
		return nil, err
	}
	// Oldest first, so that a parent is loaded before the generation that
	// continues it.
	sort.SliceStable(gens, func(i, j int) bool { return gens[i].Created.Before(gens[j].Created) })
	out := make([]*genInfo, 0, len(gens))
	byID := make(map[string]*genInfo, len(gens))
	var snaps []*catalog.Snapshot // listed once, when a log's head is missing
	listed := false
	for _, g := range gens {
		segs, err := catalog.ListSegments(ctx, b, g.ID)
		if err != nil {
			return nil, err
		}
		sort.SliceStable(segs, func(i, j int) bool {
			if segs[i].Start != segs[j].Start {
				return segs[i].Start < segs[j].Start
			}
			return segs[i].End > segs[j].End
		})
		gi := &genInfo{g: g, segs: segs, start: g.StartOffset, end: g.StartOffset, lost: -1}
		byID[g.ID] = gi
		if g.Parent != "" {
			if err := gi.inherit(byID[g.Parent]); err != nil {
				gi.baseErr = err
			}
		} else {
			base, err := catalog.ReadSnapshot(ctx, b, g.BaseSnapshot)
			switch {
			case err != nil:
				gi.baseErr = fmt.Errorf("base snapshot %s: %w", g.BaseSnapshot, err)
			case base.Generation != g.ID:
				gi.baseErr = fmt.Errorf("base snapshot %s belongs to generation %q", base.ID, base.Generation)
			default:
				gi.base = base
			}
			if len(segs) > 0 && segs[0].Start > g.StartOffset {
				// The log's head is gone: retention dropped it after a
				// snapshot synthesized from the log.
				if !listed {
					if snaps, _, err = catalog.ListSnapshots(ctx, b); err != nil {
						return nil, err
					}
					listed = true
				}
				if a := catalog.LogAnchor(g, segs, snaps); a != nil {
					gi.base, gi.baseErr, gi.anchored = a, nil, true
					gi.start, gi.end = a.Source.Offset, a.Source.Offset
				}
			}
		}
		if gi.gap == nil {
			for _, s := range segs {
				if s.End <= gi.end {
					continue
				}
				if s.Start > gi.end {
					gi.gap = &catalog.Gap{Generation: g.ID, From: gi.end, To: s.Start}
					break
				}
				gi.chain = append(gi.chain, link{seg: s, from: gi.end, to: noLimit})
				gi.end = s.End
			}
		}
		if gi.gap == nil {
			// An unreadable heartbeat only loses its extension (verify
			// reports it).
			if q, err := catalog.ReadQuiet(ctx, b, g.ID); err == nil && q.Covers(g.ID, gi.end) {
				gi.quietEnd, gi.quietMs = q.Offset, q.UnixMs
			}
		}
		out = append(out, gi)
	}
	return out, nil
}

// inherit makes gi, a generation that continues parent's history after a
// failover that lost writes, start as parent's base and chain up to gi's
// start offset; parent's log after that offset is marked lost.
func (gi *genInfo) inherit(parent *genInfo) error {
	g := gi.g
	if parent == nil {
		return fmt.Errorf("generation %s continues generation %s, which is not in the repository", g.ID, g.Parent)
	}
	if parent.lost < 0 || g.StartOffset < parent.lost {
		parent.lost = g.StartOffset
	}
	gi.base, gi.baseErr, gi.start = parent.base, parent.baseErr, parent.start
	gi.end = parent.start
	for _, l := range parent.chain {
		if l.from >= g.StartOffset {
			break
		}
		l.to = min(l.to, g.StartOffset)
		gi.chain = append(gi.chain, l)
		gi.end = min(l.seg.End, g.StartOffset)
	}
	if gi.end < g.StartOffset {
		// The parent's log does not reach the fork.
		gi.gap = &catalog.Gap{Generation: parent.g.ID, From: gi.end, To: g.StartOffset}
		if parent.gap != nil {
			gi.gap = parent.gap
		}
	}
	return nil
}

// Windows returns every generation's recoverable window, oldest first.
func Windows(ctx context.Context, b storage.Backend) ([]Window, error) {
	gens, err := loadGens(ctx, b)
	if err != nil {
		return nil, err
	}
	ws := make([]Window, 0, len(gens))
	for _, gi := range gens {
		ws = append(ws, gi.clipped().window())
	}
	return ws, nil
}

// Plan is a point-in-time restore decided: the base snapshot to load and
// the log to replay after it. It is only the decision; ToRedis, ToDir and
// ToRDB carry it out.
type Plan struct {
	Target     Target
	Generation *catalog.Generation
	Base       *catalog.Snapshot
	// Segments are replayed in order; the last one may be cut.
	Segments []*catalog.Segment
	// Offset is the replication offset of the restored state.
	Offset int64
	// Time is the receive time of the last command replayed (the base's
	// time when none is).
	Time time.Time
	// Match is, for KindBeforeCommand, the command restored to just
	// before.
	Match *Command
	// Skipped are the commands left out (Target.Skip).
	Skipped []Command
	// Notes explain choices the caller should show (a cut moved before a
	// MULTI, a generation chosen among several).
	Notes []string

	// spans are, per segment of Segments, the offsets of the commands
	// replayed from it: [from, to) (before from: an earlier overlapping
	// segment replayed them; from to on: another history after a fork).
	spans []span
	// stopPos is the AOF position in the last segment where the replay
	// stops; -1: none.
	stopPos int64
	// skip holds the offsets of the commands left out (Target.Skip).
	skip map[int64]bool
	// log is where the segments and the base are read.
	log logSource
}

// span is the offsets [from, to) of the commands a segment contributes.
type span struct{ from, to int64 }

// choice is what a search for a target decided: the generation, where its
// chain is cut (nil: after the whole chain), and for a time target, the
// point after the last command at or before the time when nothing after
// it is replayed (end; nil when the search did not walk the log).
type choice struct {
	gi    *genInfo
	cut   *cut
	end   *point
	notes []string
}

// planner searches the generations of a repository for a target.
type planner struct {
	t    Target
	log  logSource
	gens []*genInfo
}

// NewPlan picks the generation and base snapshot that cover t, checks the
// log in between is contiguous and finds the cut.
func NewPlan(ctx context.Context, b storage.Backend, t Target, o Options) (*Plan, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	gens, err := loadGens(ctx, b)
	if err != nil {
		return nil, err
	}
	pl := &planner{t: t, log: logSource{b: b, ids: o.Identities}}
	if t.Generation != "" {
		for _, gi := range gens {
			if gi.g.ID == t.Generation {
				pl.gens = append(pl.gens, gi)
			}
		}
		if len(pl.gens) == 0 {
			return nil, fmt.Errorf("no generation %q in %s: see `redback list --repo %s`", t.Generation, b.Location(), b.Location())
		}
	} else {
		// Follow the new primary's history: a generation's log after a
		// failover that lost it is replayed only when it is named.
		for _, gi := range gens {
			pl.gens = append(pl.gens, gi.clipped())
		}
	}
	var ch *choice
	switch t.Kind {
	case KindTime:
		ch, err = pl.byTime(ctx)
	case KindOffset:
		ch, err = pl.byOffset(ctx)
	case KindLatest:
		ch, err = pl.latest()
	case KindBeforeCommand:
		ch, err = pl.beforeCommand(ctx)
	}
	if err != nil {
		return nil, err
	}
	p := ch.plan(t, pl.log)
	if err := p.resolveSkips(ctx, ch.gi); err != nil {
		return nil, err
	}
	if err := p.nearerBase(ctx, ch.gi); err != nil {
		return nil, err
	}
	return p, nil
}

// windows are the windows of the generations searched, for errors.
func (pl *planner) windows() []Window {
	ws := make([]Window, 0, len(pl.gens))
	for _, gi := range pl.gens {
		ws = append(ws, gi.window())
	}
	return ws
}

// byTime finds the state after the last command received at or before
// t.Time, in the newest generation covering it.
func (pl *planner) byTime(ctx context.Context) (*choice, error) {
	t := pl.t
	tms := t.Time.UnixMilli()
	ch := &choice{}
	n := 0
	for _, c := range pl.gens {
		if c.base != nil && c.fromMs() <= tms && tms <= c.toMs() {
			ch.gi = c // the newest wins: its base is nearest
			n++
		}
	}
	if n > 1 {
		ch.notes = append(ch.notes, fmt.Sprintf("%d generations cover %s: using the newest, %s (name another with --generation)", n, fmtTime(t.Time), ch.gi.g.ID))
	}
	if ch.gi == nil {
		for _, c := range pl.gens {
			if c.base != nil && c.gap != nil && c.fromMs() <= tms && tms <= c.lastMsAll() {
				return nil, &GapError{Target: t.String(), Generation: c.g.ID, From: c.gap.From, To: c.gap.To, Newest: msTime(c.toMs())}
			}
		}
		for _, c := range pl.gens {
			if c.base == nil && pack.VerificationFailed(c.baseErr) && len(c.segs) > 0 && c.segs[0].FirstMs <= tms && tms <= c.lastMsAll() {
				return nil, fmt.Errorf("%s: generation %s covers it, but %w", t.String(), c.g.ID, c.baseErr)
			}
		}
		return nil, &CoverageError{Target: t.String(), Reason: pastNewest(pl.gens, t.Time), Windows: pl.windows()}
	}
	for i, l := range ch.gi.chain {
		if l.seg.LastMs > tms {
			return ch, pl.timeCut(ctx, ch, i)
		}
	}
	return ch, nil
}

// timeCut cuts ch's chain, from segment start on, before the first command
// received after the target. When that command's time is only bounded and
// the target falls inside its interval, it refuses (*UncertainError) or,
// with Target.Uncertain, cuts on the earliest or the latest side and says
// so in ch.notes.
func (pl *planner) timeCut(ctx context.Context, ch *choice, start int) error {
	t, gi := pl.t, ch.gi
	tms := t.Time.UnixMilli()
	ct, cur, err := gi.seek(ctx, pl.log, start, func(r *record) bool { return r.Ms > tms })
	if err != nil {
		return err
	}
	end := cur.end()
	ch.cut, ch.end = ct, &end
	if ct == nil || ct.match.From <= 0 || ct.match.From >= tms {
		return nil
	}
	// The commands whose interval holds the target: from the match to the
	// first command known to have run after the target.
	match := ct.match
	var n int64
	late, lateCur, err := gi.seek(ctx, pl.log, ct.seg, func(r *record) bool {
		if r.Offset >= match.Offset && r.From > 0 && r.From < tms && r.Ms > tms {
			n++
			return false
		}
		return r.Ms > tms
	})
	if err != nil {
		return err
	}
	lateEnd := lateCur.end()
	hi := lateEnd.prevMs
	if late != nil {
		hi = late.prevMs
	}
	ue := &UncertainError{Target: t.String(), Generation: gi.g.ID, From: msTime(match.From), To: msTime(hi), Commands: n}
	if base := gi.fromMs(); match.From < base {
		ue.From, ue.ByOffset, ue.BeforeOffset = msTime(base), true, ct.offset
	}
	switch t.Uncertain {
	case UncertainEarliest:
		ch.notes = append(ch.notes, fmt.Sprintf("%s falls inside %s .. %s, when %d commands ran at times only known within that interval: --uncertain earliest restores the state before them (as at %s)", fmtTime(t.Time), fmtTime(ue.From), fmtTime(ue.To), n, fmtTime(ue.From)))
		return nil
	case UncertainLatest:
		ch.notes = append(ch.notes, fmt.Sprintf("%s falls inside %s .. %s, when %d commands ran at times only known within that interval: --uncertain latest restores the state after them (as at %s)", fmtTime(t.Time), fmtTime(ue.From), fmtTime(ue.To), n, fmtTime(ue.To)))
		ch.cut, ch.end = late, &lateEnd
		return nil
	}
	return ue
}

// byOffset finds the state at t.Offset: the last command boundary at or
// before it, in the one generation holding it.
func (pl *planner) byOffset(ctx context.Context) (*choice, error) {
	t := pl.t
	var cands []*genInfo
	for _, c := range pl.gens {
		if c.base != nil && c.start <= t.Offset && t.Offset <= c.durableEnd() {
			cands = append(cands, c)
		}
	}
	cands = dropParents(cands)
	if len(cands) > 1 {
		ids := make([]string, len(cands))
		for i, c := range cands {
			ids[i] = c.g.ID
		}
		return nil, fmt.Errorf("offset %d is in generations %s: name one with --generation", t.Offset, strings.Join(ids, ", "))
	}
	if len(cands) == 0 {
		for _, c := range pl.gens {
			if c.base != nil && c.gap != nil && c.g.StartOffset <= t.Offset {
				return nil, &GapError{Target: t.String(), Generation: c.g.ID, From: c.gap.From, To: c.gap.To, Newest: msTime(c.toMs())}
			}
		}
		return nil, &CoverageError{Target: t.String(), Windows: pl.windows()}
	}
	ch := &choice{gi: cands[0]}
	for i, l := range ch.gi.chain {
		if l.seg.End > t.Offset {
			var err error
			ch.cut, _, err = ch.gi.seek(ctx, pl.log, i, func(r *record) bool { return r.Offset+r.Size > t.Offset })
			return ch, err
		}
	}
	return ch, nil
}

// latest is the newest durable point (NewestDurable's generation, whole).
func (pl *planner) latest() (*choice, error) {
	t := pl.t
	gi, note := newestGen(pl.gens)
	ch := &choice{gi: gi}
	if note != "" {
		ch.notes = append(ch.notes, note)
	}
	for _, c := range pl.gens {
		// a newer generation that is damaged: its point is lost, say so
		if c.base == nil && pack.VerificationFailed(c.baseErr) && (gi == nil || c.lastMsAll() > gi.toMs()) {
			return nil, fmt.Errorf("%s: generation %s holds it, but %w", t.String(), c.g.ID, c.baseErr)
		}
	}
	if gi == nil {
		return nil, &CoverageError{Target: t.String(), Reason: "no generation has a readable base snapshot", Windows: pl.windows()}
	}
	return ch, nil
}

// beforeCommand finds the state just before the first command matching
// t.Command, in the oldest generation holding one.
func (pl *planner) beforeCommand(ctx context.Context) (*choice, error) {
	t := pl.t
	ams := int64(0)
	if !t.Command.After.IsZero() {
		ams = t.Command.After.UnixMilli()
	}
	name := strings.ToUpper(t.Command.Name)
	pat := []byte(t.Command.KeyPattern)
	matches := func(r *record) bool {
		return r.Ms >= ams && r.Name == name && (len(pat) == 0 || matchKeys(pat, r.Args))
	}
	for _, c := range pl.gens {
		if c.base == nil || c.toMs() < ams {
			continue
		}
		for i, l := range c.chain {
			if l.seg.LastMs < ams {
				continue
			}
			ct, _, err := c.seek(ctx, pl.log, i, matches)
			if err != nil {
				return nil, err
			}
			if ct != nil {
				return &choice{gi: c, cut: ct}, nil
			}
			break
		}
	}
	reason := "no such command in the restorable log"
	for _, c := range pl.gens {
		if c.gap != nil {
			reason += fmt.Sprintf("; generation %s is missing the log between offsets %d and %d, and nothing after it can be restored", c.g.ID, c.gap.From, c.gap.To)
		}
	}
	return nil, &CoverageError{Target: t.String(), Reason: reason, Windows: pl.windows()}
}

// plan turns the choice into the plan for t: the chain up to the cut.
func (ch *choice) plan(t Target, log logSource) *Plan {
	gi := ch.gi
	p := &Plan{Target: t, Generation: gi.g, Base: gi.base, Notes: ch.notes, stopPos: -1, log: log}
	links := gi.chain
	if ch.cut != nil {
		links = gi.chain[:ch.cut.seg+1]
	}
	for _, l := range links {
		p.Segments = append(p.Segments, l.seg)
		p.spans = append(p.spans, span{l.from, l.to})
	}
	switch ct := ch.cut; {
	case ct == nil:
		p.Offset, p.Time = gi.end, msTime(gi.chainToMs())
		switch {
		case gi.quietEnd <= gi.end:
		case t.Kind == KindLatest, t.Kind == KindTime && t.Time.UnixMilli() >= gi.quietMs:
			// The heartbeat: only control traffic follows the chain.
			p.Offset, p.Time = gi.quietEnd, msTime(gi.toMs())
		case t.Kind == KindOffset && t.Offset > gi.end:
			p.Offset = t.Offset
		}
		if ch.end != nil && ch.end.prevEnd > 0 {
			// Every command is replayed but control traffic received
			// after the target follows the last one: stop before it.
			p.Offset, p.Time = ch.end.prevEnd, msTime(max(ch.end.prevMs, gi.fromMs()))
		}
	default:
		p.stopPos, p.Offset, p.Time = ct.pos, ct.offset, msTime(max(ct.prevMs, gi.fromMs()))
		if ct.prevMs == 0 {
			p.Time = msTime(gi.fromMs())
		}
		if t.Kind == KindTime && ct.prevEnd > 0 && !ct.inTx {
			// Not the control traffic (PING) between the last command
			// replayed and the first one left out: it may have come after
			// the target.
			p.Offset = ct.prevEnd
		}
	}
	switch {
	case t.Kind == KindBeforeCommand:
		p.Match = ch.cut.match.command(gi.g.ID, ch.cut.inTx)
		if ch.cut.inTx {
			p.Notes = append(p.Notes, fmt.Sprintf("%s is inside a transaction: restoring to just before its MULTI (offset %d)", p.Match.Name, p.Offset))
		}
	case ch.cut != nil && ch.cut.inTx:
		p.Notes = append(p.Notes, fmt.Sprintf("the target falls inside a transaction: restoring to just before its MULTI (offset %d)", p.Offset))
	}
	return p
}

// nearerBase makes the plan start from the newest snapshot synthesized
// from gi's log (catalog.MethodLog) that holds a state at or before the
// plan's offset (and before every skipped command), instead of the
// generation's base: such a snapshot is the base and the log up to its
// offset, verified, so only the log after it is replayed. Segments that
// end at or before its offset are dropped; commands before it in the
// first kept segment are skipped like an overlap.
func (p *Plan) nearerBase(ctx context.Context, gi *genInfo) error {
	if gi.base == nil {
		return nil
	}
	limit := p.Offset
	for _, off := range p.Target.Skip {
		limit = min(limit, off)
	}
	snaps, _, err := catalog.ListSnapshots(ctx, p.log.b)
	if err != nil {
		return err
	}
	var best *catalog.Snapshot
	for _, s := range snaps {
		if !s.FromLog() || s.Generation != gi.g.ID || !s.Verified {
			continue
		}
		if off := s.Source.Offset; off > gi.start && off <= limit && (best == nil || off > best.Source.Offset) {
			best = s
		}
	}
	if best == nil {
		return nil
	}
	off := best.Source.Offset
	var segs []*catalog.Segment
	var spans []span
	for i, s := range p.Segments {
		if s.End <= off {
			continue
		}
		segs = append(segs, s)
		spans = append(spans, span{max(p.spans[i].from, off), p.spans[i].to})
	}
	p.Base, p.Segments, p.spans = best, segs, spans
	return nil
}

// dropParents removes from cands every generation that another candidate
// continues (up to the fork their histories are the same; the child
// follows the new primary).
func dropParents(cands []*genInfo) []*genInfo {
	parents := map[string]bool{}
	for _, c := range cands {
		if c.g.Parent != "" {
			parents[c.g.Parent] = true
		}
	}
	out := cands[:0:0]
	for _, c := range cands {
		if !parents[c.g.ID] {
			out = append(out, c)
		}
	}
	return out
}

func (t Target) validate() error {
	switch t.Kind {
	case KindTime:
		if t.Time.IsZero() {
			return errors.New("no target time")
		}
	case KindBeforeCommand:
		if strings.TrimSpace(t.Command.Name) == "" {
			return errors.New("no command name")
		}
	case KindOffset:
		if t.Offset < 0 {
			return fmt.Errorf("offset %d is negative", t.Offset)
		}
	case KindLatest:
	default:
		return errors.New("no target: give a time, a command or an offset")
	}
	return nil
}

// newestGen returns the generation NewestDurable picks among gens, or nil,
// and NewestDurable's note.
func newestGen(gens []*genInfo) (*genInfo, string) {
	ws := make([]Window, len(gens))
	for i, c := range gens {
		ws[i] = c.window()
	}
	w, note := NewestDurable(ws)
	if w == nil {
		return nil, ""
	}
	for _, c := range gens {
		if c.g.ID == w.Generation {
			return c, note
		}
	}
	return nil, ""
}

// NewestDurable returns the window that holds the newest durable point
// (the restorable window whose log reaches the latest time, the later one
// of equals), or nil when none is restorable. A reset generation
// (Window.Reset: the source came back empty or much smaller under a new
// replid) that holds no command yet is passed over for the newest
// restorable window before it: what it holds is the dataset the source
// lost, not the newest point anyone wants back. note then names both;
// it is "" otherwise. list, restore --at latest and drill share this
// choice.
func NewestDurable(ws []Window) (newest *Window, note string) {
	var best, kept *Window
	for i := range ws {
		w := &ws[i]
		if w.Problem != "" || w.To.IsZero() {
			continue
		}
		if best == nil || !w.To.Before(best.To) {
			best = w
		}
		if w.Reset && w.Commands == 0 {
			continue
		}
		if kept == nil || !w.To.Before(kept.To) {
			kept = w
		}
	}
	if best == nil || kept == nil || kept == best {
		return best, ""
	}
	return kept, fmt.Sprintf("generation %s is a reset (%s) and holds no command yet, so the newest durable point is the newest one before it: generation %s, offset %d, %s; to restore the reset generation itself, give --generation %s",
		best.Generation, best.ResetReason, kept.Generation, kept.ToOffset, fmtTime(kept.To), best.Generation)
}

// pastNewest explains a time after the newest durable point: how far
// behind that point is, and how to restore it instead. It returns "" for
// any other time.
func pastNewest(gens []*genInfo, t time.Time) string {
	gi, _ := newestGen(gens)
	if gi == nil || t.UnixMilli() <= gi.toMs() {
		return ""
	}
	to := msTime(gi.toMs())
	return fmt.Sprintf("the newest durable point is %s (generation %s, offset %d), %s before it: the log has not reached that time yet; restore the newest point with --at latest",
		fmtTime(to), gi.g.ID, gi.durableEnd(), t.Sub(to).Round(time.Millisecond))
}

func (r *record) command(gen string, inTx bool) *Command {
	c := &Command{Generation: gen, Offset: r.Offset, Size: r.Size, Time: msTime(r.Ms), DB: r.DB, Name: r.Name, InTransaction: inTx}
	if r.From > 0 {
		c.TimeFrom = msTime(r.From)
	}
	c.Args = make([][]byte, len(r.Args))
	for i, a := range r.Args {
		c.Args[i] = append([]byte(nil), a...)
	}
	c.Text = Display(c.Args, 64, 8)
	return c
}

// resolveSkips finds each offset of Target.Skip among the replayed commands.
func (p *Plan) resolveSkips(ctx context.Context, gi *genInfo) error {
	if len(p.Target.Skip) == 0 {
		return nil
	}
	p.skip = map[int64]bool{}
	for _, off := range p.Target.Skip {
		if off >= p.Offset {
			return fmt.Errorf("--skip-command-at %d: the restore stops at offset %d, so that command is not replayed anyway", off, p.Offset)
		}
		si := -1
		for i, s := range p.Segments {
			if s.Start <= off && off < s.End && off >= p.spans[i].from && off < p.spans[i].to {
				si = i
			}
		}
		if si < 0 {
			return fmt.Errorf("--skip-command-at %d: no segment of generation %s holds that offset (see `redback log`)", off, gi.g.ID)
		}
		var found *Command
		inTx := false
		err := p.log.scan(ctx, p.Segments[si], func(r *record) error {
			if r.Annotation || r.Synthetic {
				return nil
			}
			switch r.Name {
			case "MULTI":
				inTx = true
			case "EXEC":
				inTx = false
			}
			if r.Offset == off {
				found = r.command(gi.g.ID, inTx && r.Name != "MULTI")
				return errStop
			}
			if r.Offset > off {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		if found == nil {
			return fmt.Errorf("--skip-command-at %d: no command starts at that offset in generation %s (see the offsets with `redback log`)", off, gi.g.ID)
		}
		switch found.Name {
		case "SELECT", "MULTI", "EXEC":
			return fmt.Errorf("--skip-command-at %d is a %s: give the offset of a data command", off, found.Name)
		}
		p.skip[off] = true
		p.Skipped = append(p.Skipped, *found)
	}
	return nil
}

// matchKeys reports whether one of the key arguments of a command matches
// pattern.
func matchKeys(pattern []byte, args [][]byte) bool {
	for _, k := range KeyArgs(args) {
		if restore.Match(pattern, k) {
			return true
		}
	}
	return false
}

// KeyArgs returns the key arguments of a command: every argument of DEL,
// UNLINK, EXISTS, TOUCH, WATCH; the odd ones of MSET, MSETNX; the first
// two of RENAME, RENAMENX, COPY, SMOVE, LMOVE, RPOPLPUSH, BLMOVE; none for
// commands without keys (FLUSHALL, FLUSHDB, SWAPDB, SELECT, MULTI, EXEC,
// PING, FUNCTION, SCRIPT); the first argument of every other command.
func KeyArgs(args [][]byte) [][]byte {
	if len(args) < 2 {
		return nil
	}
	switch strings.ToUpper(string(args[0])) {
	case "FLUSHALL", "FLUSHDB", "SWAPDB", "SELECT", "MULTI", "EXEC", "PING", "FUNCTION", "SCRIPT", "REPLCONF":
		return nil
	case "DEL", "UNLINK", "EXISTS", "TOUCH", "WATCH":
		return args[1:]
	case "MSET", "MSETNX":
		var ks [][]byte
		for i := 1; i < len(args); i += 2 {
			ks = append(ks, args[i])
		}
		return ks
	case "RENAME", "RENAMENX", "COPY", "SMOVE", "LMOVE", "RPOPLPUSH", "BLMOVE":
		if len(args) >= 3 {
			return args[1:3]
		}
	}
	return args[1:2]
}
