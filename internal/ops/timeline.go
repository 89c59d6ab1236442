package ops

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/storage"
)

// Source is one source as a face knows it: its repository (read through a
// cache by long-running servers) and what the agent knows live. Only the
// agent fills the live fields.
type Source struct {
	// Name is the source's name (the agent's config name; for a
	// repository without one, derived from the source address).
	Name string
	// Repo is the repository; RepoURL the URL to put in commands (never
	// with a secret: pass it through config.Redact).
	Repo    storage.Backend
	RepoURL string
	// Address is the source's address with its password masked; "" takes
	// the newest manifest's.
	Address string
	// SnapshotEvery is the expected snapshot interval; 0 estimates it from
	// the snapshots' spacing.
	SnapshotEvery time.Duration
	// RTOObjective is the drills' objective, when configured.
	RTOObjective time.Duration
	// Shipping, when set, is the live shipping state (agent only).
	Shipping func() *Shipping
}

// Query narrows a timeline.
type Query struct {
	// Name selects one source ("" all).
	Name string
	// From and To bound the times shown (zero: open).
	From, To time.Time
}

// TimelineDoc is GET /api/v1/timeline: per source, every restorable
// moment and what marks it.
type TimelineDoc struct {
	Now     time.Time        `json:"now"`
	From    time.Time        `json:"from,omitzero"`
	To      time.Time        `json:"to,omitzero"`
	Sources []SourceTimeline `json:"sources"`
}

// SourceTimeline is one source of a TimelineDoc. Snapshots and Windows are
// the types (and, unfiltered, the values) `redback list --json` prints as
// snapshots and generations.
type SourceTimeline struct {
	Name    string `json:"name"`
	Repo    string `json:"repo"`
	Address string `json:"address,omitempty"`
	// Restore is the start of every restore command for this source.
	Restore string `json:"restore"`
	// Snapshots, newest first; Pinned lists those a live restore or drill
	// pins (kept ones have keep: true).
	Snapshots []SourceSnapshot `json:"snapshots"`
	Pinned    []string         `json:"pinned"`
	// Windows are the log generations' point-in-time windows, oldest first.
	Windows []SourceWindow `json:"windows"`
	// Gaps are the stretches between windows that no log covers.
	Gaps   []TimeGap       `json:"gaps"`
	Drills []catalog.Drill `json:"drills"`
	Events []Event         `json:"events"`
	// Shipping is the live shipping state (agent) or, for a repository
	// alone, what the stored log says.
	Shipping *Shipping `json:"shipping,omitempty"`
	Health   Health    `json:"health"`
	Problems []string  `json:"problems"`
}

// TimeGap is a stretch of time between two windows that cannot be restored
// to any moment (only to the snapshots inside it).
type TimeGap struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	After  string    `json:"after_generation,omitempty"`
	Before string    `json:"before_generation,omitempty"`
	Reason string    `json:"reason"`
}

// Shipping is a source's shipping state.
type Shipping struct {
	// Live is true when an agent reports it; false when it is read from
	// the stored log.
	Live      bool   `json:"live"`
	Connected bool   `json:"connected"`
	Following string `json:"following,omitempty"`
	// Failovers counts the failovers the shipper followed (agent only).
	Failovers  int64   `json:"failovers,omitempty"`
	LagSeconds float64 `json:"lag_seconds"`
	LagBytes   int64   `json:"lag_bytes"`
	Generation string  `json:"generation,omitempty"`
	// LastShipped is the receive time of the newest stored command.
	LastShipped time.Time `json:"last_shipped,omitzero"`
	Healthy     bool      `json:"healthy"`
	Reasons     []string  `json:"reasons,omitempty"`
}

// Health is a source's state at a glance.
type Health struct {
	Healthy bool `json:"healthy"`
	// LastSnapshot is the newest verified snapshot's end time.
	LastSnapshot           time.Time `json:"last_snapshot,omitzero"`
	LastSnapshotAgeSeconds float64   `json:"last_snapshot_age_seconds"`
	// ExpectedIntervalSeconds is the configured (or, without an agent,
	// observed) snapshot interval.
	ExpectedIntervalSeconds float64 `json:"expected_interval_seconds"`
	LagSeconds              float64 `json:"lag_seconds"`
	// LastDrill is the newest drill, if any.
	LastDrill *catalog.Drill `json:"last_drill,omitempty"`
	// RTOEstimateSeconds is the newest passed drill's RTO.
	RTOEstimateSeconds float64  `json:"rto_estimate_seconds"`
	Reasons            []string `json:"reasons,omitempty"`
}

// Timeline reads every source's timeline. ev, when set, caches what the
// log scan found between calls.
func Timeline(ctx context.Context, srcs []Source, q Query, ev *EventScanner, now time.Time) (*TimelineDoc, error) {
	doc := &TimelineDoc{Now: now.UTC(), From: q.From, To: q.To, Sources: []SourceTimeline{}}
	found := false
	for _, s := range srcs {
		if q.Name != "" && s.Name != q.Name {
			continue
		}
		found = true
		st, err := sourceTimeline(ctx, s, q, ev, now)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		doc.Sources = append(doc.Sources, *st)
	}
	if q.Name != "" && !found {
		names := make([]string, 0, len(srcs))
		for _, s := range srcs {
			names = append(names, s.Name)
		}
		return nil, &UnknownSourceError{Name: q.Name, Names: names}
	}
	return doc, nil
}

// UnknownSourceError names a source that is not there and the ones that are.
type UnknownSourceError struct {
	Name  string
	Names []string
}

func (e *UnknownSourceError) Error() string {
	return fmt.Sprintf("no source %q (sources: %s)", e.Name, strings.Join(e.Names, ", "))
}

func in(t time.Time, q Query) bool {
	return (q.From.IsZero() || !t.Before(q.From)) && (q.To.IsZero() || !t.After(q.To))
}

func overlaps(from, to time.Time, q Query) bool {
	return (q.From.IsZero() || !to.Before(q.From)) && (q.To.IsZero() || !from.After(q.To))
}

func sourceTimeline(ctx context.Context, s Source, q Query, ev *EventScanner, now time.Time) (*SourceTimeline, error) {
	var l *Listing
	var known *listMemo
	var err error
	key := s.RepoURL + "#" + s.Name
	if ev != nil {
		l, known, err = ev.list(ctx, key, s.Repo, s.Name)
	} else {
		l, _, err = List(ctx, s.Repo, s.Name)
	}
	if err != nil {
		return nil, err
	}
	st := &SourceTimeline{Name: s.Name, Repo: s.RepoURL, Address: s.Address, Restore: RestorePrefix(s.RepoURL, s.Name),
		Snapshots: []SourceSnapshot{}, Pinned: []string{}, Windows: []SourceWindow{}, Gaps: []TimeGap{},
		Drills: []catalog.Drill{}, Events: []Event{}, Problems: l.Problems}
	if st.Address == "" {
		st.Address = newestAddress(l)
	}
	for _, sn := range l.Snapshots {
		if in(sn.EndTime, q) {
			st.Snapshots = append(st.Snapshots, sn)
		}
	}
	for _, w := range l.Generations {
		if w.Problem != "" || overlaps(w.From, w.To, q) {
			st.Windows = append(st.Windows, w)
		}
	}
	for _, g := range timeGaps(l.Windows()) {
		if overlaps(g.From, g.To, q) {
			st.Gaps = append(st.Gaps, g)
		}
	}
	if pins, err := catalog.ListPins(ctx, s.Repo); err != nil {
		st.Problems = append(st.Problems, err.Error())
	} else {
		seen := map[string]bool{}
		for _, p := range pins {
			if p.Expires.After(now) && !seen[p.Snapshot] {
				seen[p.Snapshot] = true
				st.Pinned = append(st.Pinned, p.Snapshot)
			}
		}
		sort.Strings(st.Pinned)
	}
	drills, bad, err := catalog.ListDrills(ctx, s.Repo)
	if err != nil {
		st.Problems = append(st.Problems, err.Error())
	}
	for _, e := range bad {
		st.Problems = append(st.Problems, e.Error())
	}
	for _, d := range drills {
		if in(d.Time, q) {
			st.Drills = append(st.Drills, d)
		}
	}
	if ev != nil {
		evs, err := ev.events(ctx, key, s.Repo, known)
		if err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("log events: %v", err))
		}
		for _, e := range evs {
			if in(e.Time, q) {
				st.Events = append(st.Events, e)
			}
		}
	}
	st.Shipping = shipping(s, l, now)
	st.Health = health(s, l, drills, st.Shipping, now)
	return st, nil
}

// newestAddress is the source address of the newest snapshot (already
// masked in manifests).
func newestAddress(l *Listing) string {
	if len(l.Snapshots) > 0 {
		return l.Snapshots[0].Snapshot.Source.Address
	}
	return ""
}

// timeGaps are the stretches between consecutive restorable windows.
func timeGaps(ws []pitr.Window) []TimeGap {
	var ok []pitr.Window
	for _, w := range ws {
		if w.Problem == "" {
			ok = append(ok, w)
		}
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].From.Before(ok[j].From) })
	var gaps []TimeGap
	var reach time.Time
	var last *pitr.Window
	for i := range ok {
		w := &ok[i]
		if last != nil && w.From.After(reach) {
			gaps = append(gaps, TimeGap{From: reach, To: w.From, After: last.Generation, Before: w.Generation, Reason: gapReason(last, w)})
		}
		if last == nil || w.To.After(reach) {
			reach, last = w.To, w
		}
	}
	return gaps
}

func gapReason(prev, next *pitr.Window) string {
	if next.Reset {
		return fmt.Sprintf("generation %s is a reset of %s (%s): the source came back without its data", next.Generation, next.ResetFrom, next.ResetReason)
	}
	for _, g := range prev.Gaps {
		if !g.Overlap {
			return fmt.Sprintf("generation %s is missing its log between offsets %d and %d", prev.Generation, g.From, g.To)
		}
	}
	if prev.Ended {
		r := prev.EndReason
		if r == "" {
			r = "ended"
		}
		return fmt.Sprintf("generation %s ended (%s); generation %s starts with a new base snapshot", prev.Generation, r, next.Generation)
	}
	return fmt.Sprintf("no log between generation %s and generation %s", prev.Generation, next.Generation)
}

// shipping is the live state when the agent has one, else what the log says.
func shipping(s Source, l *Listing, now time.Time) *Shipping {
	var sh *Shipping
	if s.Shipping != nil {
		sh = s.Shipping()
	}
	if sh == nil {
		if len(l.Generations) == 0 {
			return nil
		}
		sh = &Shipping{}
	}
	for _, w := range l.Windows() {
		if w.Problem == "" && w.To.After(sh.LastShipped) {
			sh.LastShipped = w.To
			if sh.Generation == "" || !sh.Live {
				sh.Generation = w.Generation
			}
		}
	}
	if !sh.Live {
		sh.Healthy = true
		if !sh.LastShipped.IsZero() {
			sh.LagSeconds = now.Sub(sh.LastShipped).Seconds()
		}
	}
	return sh
}

func health(s Source, l *Listing, drills []catalog.Drill, sh *Shipping, now time.Time) Health {
	h := Health{Healthy: true}
	var times []time.Time
	for _, sn := range l.SnapshotList() {
		if sn.Verified {
			times = append(times, sn.EndTime)
		}
	}
	every := s.SnapshotEvery
	if every == 0 && len(times) >= 2 {
		// Newest first: the median spacing of the newest ten.
		var d []time.Duration
		for i := 1; i < len(times) && i <= 10; i++ {
			d = append(d, times[i-1].Sub(times[i]))
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		every = d[len(d)/2]
	}
	h.ExpectedIntervalSeconds = every.Seconds()
	if len(times) > 0 {
		h.LastSnapshot = times[0]
		age := now.Sub(times[0])
		h.LastSnapshotAgeSeconds = age.Seconds()
		if every > 0 && age > 2*every {
			h.Reasons = append(h.Reasons, fmt.Sprintf("last snapshot %s ago (expected every %s)", age.Round(time.Second), every))
		}
	} else {
		h.Reasons = append(h.Reasons, "no verified snapshot")
	}
	if sh != nil {
		h.LagSeconds = sh.LagSeconds
		if sh.Live && !sh.Healthy {
			h.Reasons = append(h.Reasons, sh.Reasons...)
		}
	}
	if len(drills) > 0 {
		d := drills[0]
		h.LastDrill = &d
		if !d.OK {
			h.Reasons = append(h.Reasons, "last drill failed: "+d.Detail)
		}
		for _, x := range drills {
			if x.OK {
				h.RTOEstimateSeconds = x.RTOSeconds
				break
			}
		}
	}
	h.Healthy = len(h.Reasons) == 0
	return h
}
