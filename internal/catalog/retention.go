package catalog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"redback/internal/storage"
)

// Policy is a GFS retention policy over snapshots. A count of -1 keeps
// every bucket forever; 0 disables the rule. Buckets are computed in UTC
// from each snapshot's recorded EndTime, never from object names.
type Policy struct {
	Hourly, Daily, Weekly, Monthly int
	// Within keeps every snapshot that ended less than Within before now.
	Within time.Duration
	// PITR is the point-in-time window: every moment in [now-PITR, now]
	// must stay restorable, so the generation bases it depends on are kept.
	PITR time.Duration
	// Pins are the pins of in-progress restores and drills (ListPins).
	// Pins expired at now are ignored.
	Pins []Pin
	// Pinned, when set, is asked about every snapshot the other rules
	// would delete; log shipping uses it to protect what its segments
	// depend on. It must be pure (no I/O) and fast.
	Pinned func(id string) (pinned bool, reason string)
	// Generations are the log generations of the repository (Prune lists
	// them before the snapshots). When set, the base snapshot of every
	// generation PlanGenerations keeps is kept, and so is a base whose
	// generation manifest is not written yet (a shipper starting one).
	Generations []*Generation
}

// DefaultPolicy is hourly 24, daily 30, weekly 52, monthly forever and a
// 7-day PITR window.
func DefaultPolicy() Policy {
	return Policy{Hourly: 24, Daily: 30, Weekly: 52, Monthly: -1, PITR: 7 * 24 * time.Hour}
}

// Decision is what retention does with one snapshot and why. Reasons of a
// kept snapshot list every rule that keeps it; a deleted one has one
// reason saying what covers it.
type Decision struct {
	Snapshot *Snapshot `json:"-"`
	ID       string    `json:"id"`
	EndTime  time.Time `json:"end_time"`
	Keep     bool      `json:"keep"`
	Reasons  []string  `json:"reasons"`
}

// Plan decides which snapshots to keep under policy at now. It is pure:
// the same input gives the same output, and it never looks at storage.
// Decisions come newest first (EndTime, then ID).
//
// The rules, in the order their reasons are listed:
//   - marked: a snapshot with Keep set (redback keep ID) is kept.
//   - newest verified: the newest verified snapshot is always kept, whatever
//     the counts say.
//   - unverified and newer than the newest verified snapshot: kept, because
//     no verified copy covers its moment yet (redback writes only verified
//     snapshots; unverified ones come from imports). Older unverified
//     snapshots are covered by a newer verified one and go unless another
//     rule keeps them; they never fill a GFS bucket.
//   - hourly/daily/weekly/monthly N: walking verified snapshots newest
//     first, the newest snapshot of each of the last N buckets that have
//     snapshots (UTC hour, UTC day, ISO week, UTC month) is kept; -1 means
//     every bucket. A bucket is not counted twice.
//   - within D: EndTime after now-D.
//   - pitr: for the point-in-time window [now-PITR, now], every snapshot
//     with a Generation whose generation was live inside the window is a
//     candidate base: those that ended inside the window and the newest one
//     that ended before it (the base for restoring to the window's start).
//     A generation is live from its first base until the first base of the
//     next generation (the newest generation is live until now). Bases of
//     older generations, and older bases of a live one, are covered by the
//     kept base and its log.
//   - pinned: a live pin (Pins) or Pinned names it.
//   - base of a generation: with policy.Generations, the base of every
//     generation PlanGenerations keeps (a live one, the newest, one inside
//     the window, the last one before a reset), and a base whose generation
//     is newer than every listed one (its manifest is not written yet).
//   - log anchor: with policy.Generations, per generation whose log may be
//     trimmed, the snapshot synthesized from its log that Prune drops the
//     log before (see LogAnchors).
//
// Snapshots synthesized from a generation's log (Snapshot.FromLog) are not
// bases: the pitr and base rules pass them over (the base and the log
// cover their moments); the log anchor rule keeps one per generation.
//
// When there is no verified snapshot at all, nothing is deleted.
func Plan(snaps []*Snapshot, policy Policy, now time.Time) []Decision {
	sorted := append([]*Snapshot(nil), snaps...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if !a.EndTime.Equal(b.EndTime) {
			return a.EndTime.After(b.EndTime)
		}
		return a.ID > b.ID
	})
	ds := make([]Decision, len(sorted))
	newestVerified := -1
	for i, s := range sorted {
		ds[i] = Decision{Snapshot: s, ID: s.ID, EndTime: s.EndTime}
		if newestVerified < 0 && s.Verified {
			newestVerified = i
		}
	}
	keep := func(i int, reason string) {
		ds[i].Keep = true
		ds[i].Reasons = append(ds[i].Reasons, reason)
	}
	for i, s := range sorted {
		if s.Keep {
			keep(i, "marked keep")
		}
	}
	if newestVerified < 0 {
		for i := range ds {
			keep(i, "no verified snapshot covers it")
		}
		return ds
	}
	keep(newestVerified, "newest verified")
	for i := 0; i < newestVerified; i++ {
		keep(i, "unverified, newer than the newest verified snapshot")
	}

	type rule struct {
		name   string
		n      int
		bucket func(time.Time) string
	}
	rules := []rule{
		{"hourly", policy.Hourly, func(t time.Time) string { return t.Format("2006-01-02 15h") }},
		{"daily", policy.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", policy.Weekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%d-W%02d", y, w)
		}},
		{"monthly", policy.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, r := range rules {
		if r.n == 0 {
			continue
		}
		last, count := "", 0
		for i, s := range sorted {
			if !s.Verified {
				continue
			}
			if r.n > 0 && count >= r.n {
				break
			}
			b := r.bucket(s.EndTime.UTC())
			if b == last {
				continue
			}
			last = b
			count++
			keep(i, fmt.Sprintf("%s %d (%s)", r.name, count, b))
		}
	}
	if policy.Within > 0 {
		cut := now.Add(-policy.Within)
		for i, s := range sorted {
			if s.EndTime.After(cut) {
				keep(i, "within "+policy.Within.String())
			}
		}
	}
	if policy.PITR > 0 {
		planPITR(sorted, now.Add(-policy.PITR), policy.PITR, keep)
	}
	for _, p := range policy.Pins {
		if !p.Expires.After(now) {
			continue
		}
		for i, s := range sorted {
			if s.ID == p.Snapshot {
				keep(i, fmt.Sprintf("pinned by %s %s until %s", p.Purpose, p.ID, p.Expires.UTC().Format(time.RFC3339)))
			}
		}
	}
	if policy.Pinned != nil {
		for i, s := range sorted {
			if ok, why := policy.Pinned(s.ID); ok {
				keep(i, "pinned: "+why)
			}
		}
	}
	if policy.Generations != nil {
		keepBases(sorted, policy, now, keep)
		anchors := LogAnchors(sorted, policy, now)
		for i, s := range sorted {
			if a := anchors[s.Generation]; a == s {
				keep(i, fmt.Sprintf("log anchor of generation %s: the log before its offset %d goes", s.Generation, s.Source.Offset))
			}
		}
	}
	nv := sorted[newestVerified].ID
	for i := range ds {
		if !ds[i].Keep {
			ds[i].Reasons = []string{"covered by newer verified " + nv}
		}
	}
	return ds
}

// planPITR keeps the generation bases the window [start, now] needs.
func planPITR(sorted []*Snapshot, start time.Time, window time.Duration, keep func(int, string)) {
	// First base time of each generation (the generation's start).
	first := map[string]time.Time{}
	for _, s := range sorted {
		if s.Generation == "" || s.FromLog() {
			continue
		}
		if t, ok := first[s.Generation]; !ok || s.EndTime.Before(t) {
			first[s.Generation] = s.EndTime
		}
	}
	gens := make([]string, 0, len(first))
	for g := range first {
		gens = append(gens, g)
	}
	sort.Slice(gens, func(i, j int) bool {
		if !first[gens[i]].Equal(first[gens[j]]) {
			return first[gens[i]].Before(first[gens[j]])
		}
		return gens[i] < gens[j]
	})
	live := map[string]bool{}
	for i, g := range gens {
		if i == len(gens)-1 || first[gens[i+1]].After(start) {
			live[g] = true
		}
	}
	beforeKept := map[string]bool{}
	for i, s := range sorted { // newest first
		if s.Generation == "" || s.FromLog() || !live[s.Generation] {
			continue
		}
		switch {
		case !s.EndTime.Before(start):
			keep(i, fmt.Sprintf("pitr %s: base of generation %s inside the window", window, s.Generation))
		case !beforeKept[s.Generation]:
			beforeKept[s.Generation] = true
			keep(i, fmt.Sprintf("pitr %s: base of generation %s for the window's start", window, s.Generation))
		}
	}
}

// keepBases keeps the base snapshots the kept log generations need.
func keepBases(sorted []*Snapshot, policy Policy, now time.Time, keep func(int, string)) {
	why := map[string]string{}
	var newest time.Time
	for _, d := range PlanGenerations(policy.Generations, policy, now) {
		if d.Keep {
			why[d.ID] = d.Reason
		}
	}
	for _, g := range policy.Generations {
		if g.Created.After(newest) {
			newest = g.Created
		}
	}
	for i, s := range sorted {
		if s.Generation == "" || s.FromLog() {
			continue
		}
		if r, ok := why[s.Generation]; ok {
			keep(i, fmt.Sprintf("base of generation %s (%s)", s.Generation, r))
			continue
		}
		known := false
		for _, g := range policy.Generations {
			known = known || g.ID == s.Generation
		}
		if !known && !s.StartTime.Before(newest) {
			keep(i, fmt.Sprintf("base of generation %s, which a shipper is starting (no generation manifest yet)", s.Generation))
		}
	}
}

// LogAnchors returns, per log generation whose log Prune trims, the
// snapshot before whose offset the log goes: of the verified snapshots
// synthesized from that generation's log (Snapshot.FromLog) that ended at
// or before the start of the point-in-time window (now-PITR; now without a
// window), the one holding the greatest offset. Every point of the window
// is at or after that state (its commands were stored before it was
// synthesized), so it and the log after it restore them all; Plan keeps it
// until a newer one qualifies. Only a generation that PlanGenerations
// keeps and that takes part in no failover (no Parent, and no generation
// continues it) is trimmed: a failover's generation replays its parent's
// log from the parent's base.
func LogAnchors(snaps []*Snapshot, policy Policy, now time.Time) map[string]*Snapshot {
	start := now.Add(-policy.PITR)
	kept, parents := map[string]bool{}, map[string]bool{}
	for _, d := range PlanGenerations(policy.Generations, policy, now) {
		kept[d.ID] = d.Keep
	}
	for _, g := range policy.Generations {
		if g.Parent != "" {
			parents[g.Parent] = true
		}
	}
	out := map[string]*Snapshot{}
	for _, g := range policy.Generations {
		if !kept[g.ID] || g.Parent != "" || parents[g.ID] {
			continue
		}
		for _, s := range snaps {
			if !s.FromLog() || !s.Verified || s.Generation != g.ID || s.EndTime.After(start) || s.Source.Offset <= g.StartOffset {
				continue
			}
			a := out[g.ID]
			if a == nil || s.Source.Offset > a.Source.Offset || (s.Source.Offset == a.Source.Offset && s.ID < a.ID) {
				out[g.ID] = s
			}
		}
	}
	return out
}

// GenerationDecision is what retention does with one log generation.
type GenerationDecision struct {
	ID     string `json:"id"`
	Keep   bool   `json:"keep"`
	Reason string `json:"reason"`
}

// PlanGenerations decides which log generations stay under policy at now.
// It is pure. Decisions come oldest first (Created, then ID). A kept
// generation keeps its base snapshot and all its segments (Plan keeps the
// base when policy.Generations is set); a deleted one goes with all its
// segments, whatever happens to its base (a base kept by another rule stays
// as a plain snapshot). Kept, in this order of reasons:
//   - the newest generation (it holds the newest durable point);
//   - a generation that has not ended: a shipper may be writing on it, so
//     neither its base nor any of its segments may go, whatever the window;
//   - with a PITR window, a generation that covers moments inside it (the
//     next generation started after the window's start);
//   - the last generation before a reset generation that is the newest
//     (a source came back empty: the newest point before it stays
//     restorable, see Generation.Reset).
//
// With PITR 0 there is no window beyond the newest generation: every other
// ended generation goes.
func PlanGenerations(gens []*Generation, policy Policy, now time.Time) []GenerationDecision {
	gens = append([]*Generation(nil), gens...)
	sort.SliceStable(gens, func(i, j int) bool {
		if !gens[i].Created.Equal(gens[j].Created) {
			return gens[i].Created.Before(gens[j].Created)
		}
		return gens[i].ID < gens[j].ID
	})
	start := now.Add(-policy.PITR)
	out := make([]GenerationDecision, len(gens))
	last := len(gens) - 1
	for i, g := range gens {
		d := GenerationDecision{ID: g.ID, Keep: true}
		switch {
		case i == last:
			d.Reason = "newest generation"
		case !g.Ended:
			d.Reason = "not ended: a shipper may be writing on it"
		case policy.PITR > 0 && gens[i+1].Created.After(start):
			d.Reason = fmt.Sprintf("pitr %s: covers moments inside the window", policy.PITR)
		case i == last-1 && gens[last].Reset:
			d.Reason = fmt.Sprintf("holds the newest point before the reset generation %s", gens[last].ID)
		case policy.PITR > 0:
			d.Keep, d.Reason = false, fmt.Sprintf("ended; the next generation %s started before the pitr %s window", gens[i+1].ID, policy.PITR)
		default:
			d.Keep, d.Reason = false, "ended; no point-in-time window (keep-pitr 0) beyond the newest generation"
		}
		out[i] = d
	}
	// A generation that continues another after a failover replays the
	// other's base and log up to the fork: keep every ancestor of a kept
	// generation (newest first, so chains of forks are followed).
	index := make(map[string]int, len(gens))
	for i, g := range gens {
		index[g.ID] = i
	}
	for i := last; i >= 0; i-- {
		g := gens[i]
		if !out[i].Keep || g.Parent == "" {
			continue
		}
		if j, ok := index[g.Parent]; ok && !out[j].Keep {
			out[j] = GenerationDecision{ID: g.Parent, Keep: true, Reason: "continued by generation " + g.ID + " after a failover"}
		}
	}
	return out
}

// PinPrefix holds pins: pins/<pin id>.json. A pin protects one snapshot
// from retention until it expires; restores and drills write one before
// they read a snapshot and delete it when done. An expired pin is ignored
// (and removed by prune), so a crashed restore cannot pin forever.
const PinPrefix = "pins/"

// Pin is the object stored at PinKey(ID).
type Pin struct {
	Format   int       `json:"format"`
	ID       string    `json:"id"`
	Snapshot string    `json:"snapshot"`
	Purpose  string    `json:"purpose"` // restore, drill
	Holder   string    `json:"holder"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
}

// PinKey is the key of pin id.
func PinKey(id string) string { return PinPrefix + id + ".json" }

// PutPin stores a new pin on snapshot for purpose until now+ttl and
// returns it; remove it with RemovePin when done.
func PutPin(ctx context.Context, b storage.Backend, snapshot, purpose, holder string, ttl time.Duration) (*Pin, error) {
	now := time.Now().UTC()
	p := &Pin{Format: FormatVersion, ID: NewSnapshotID(now), Snapshot: snapshot, Purpose: purpose,
		Holder: holder, Created: now, Expires: now.Add(ttl)}
	if err := PutJSON(ctx, b, PinKey(p.ID), p); err != nil {
		return nil, fmt.Errorf("pin snapshot %s: %w", snapshot, err)
	}
	return p, nil
}

// RemovePin deletes pin id.
func RemovePin(ctx context.Context, b storage.Backend, id string) error {
	if err := b.Delete(ctx, PinKey(id)); err != nil {
		return fmt.Errorf("remove pin %s: %w", id, err)
	}
	return nil
}

// ListPins returns every readable pin, expired ones included. A pin that
// cannot be read is an error: retention must not run blind to it.
func ListPins(ctx context.Context, b storage.Backend) ([]Pin, error) {
	var keys []string
	err := b.List(ctx, PinPrefix, func(oi storage.ObjectInfo) error {
		if strings.HasSuffix(oi.Key, ".json") {
			keys = append(keys, oi.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	var pins []Pin
	for _, k := range keys {
		var p Pin
		if err := GetJSON(ctx, b, k, &p); err != nil {
			if errors.Is(err, storage.ErrNotExist) {
				continue // removed since the listing
			}
			return nil, err
		}
		// The key names the pin: removal must hit this object.
		p.ID = strings.TrimSuffix(strings.TrimPrefix(k, PinPrefix), ".json")
		pins = append(pins, p)
	}
	return pins, nil
}

// PruneOptions tune Prune.
type PruneOptions struct {
	DryRun bool
	// OnDelete, when set, is called after each snapshot is deleted (or
	// would be, in a dry run).
	OnDelete func(s *Snapshot)
}

// PruneResult is what Prune did.
type PruneResult struct {
	Decisions []Decision `json:"decisions"`
	// Deleted lists the ids whose manifest was removed.
	Deleted []string `json:"deleted"`
	// FreedBytes is the stored size of the deleted data objects.
	FreedBytes int64 `json:"freed_bytes"`
	// KeptBytes is the stored size of the snapshots that remain.
	KeptBytes int64 `json:"kept_bytes"`
	// Failures counts deletes that failed; Prune's error describes them.
	Failures int `json:"failures"`
	// Unreadable lists manifests that could not be read: they are neither
	// counted nor deleted.
	Unreadable []string `json:"unreadable,omitempty"`
	// UnreadableErrs are the errors behind Unreadable.
	UnreadableErrs []error `json:"-"`
	// ExpiredPins lists expired pins that were removed.
	ExpiredPins []string `json:"expired_pins,omitempty"`
	// DeletedGenerations lists the log generations removed (or that would
	// be, in a dry run) with all their segments, because the PITR window no
	// longer needs them; DeletedGenerationReasons says why for each.
	DeletedGenerations       []string          `json:"deleted_generations,omitempty"`
	DeletedGenerationReasons map[string]string `json:"deleted_generation_reasons,omitempty"`
	// KeptGenerations says why each remaining generation stays.
	KeptGenerations map[string]string `json:"kept_generations,omitempty"`
	// TrimmedLogs says, per generation whose log was trimmed (or would be,
	// in a dry run), the offset before which it was dropped: the offset of
	// its log anchor (see LogAnchors), or of an older snapshot of it that a
	// live pin holds. TrimmedSegments counts the segments removed.
	TrimmedLogs     map[string]int64 `json:"trimmed_logs,omitempty"`
	TrimmedSegments int              `json:"trimmed_segments,omitempty"`
	// Locked lists the snapshots and generations the policy would delete
	// that a storage retention lock (S3 Object Lock) still protects, with
	// the time each becomes deletable; they are kept and not tried.
	Locked map[string]time.Time `json:"locked,omitempty"`
}

// lockedUntil reports whether key is under a storage retention lock at
// now, recording id's deletable time in res when it is.
func (res *PruneResult) lockedUntil(ctx context.Context, b storage.Backend, id, key string, now time.Time) (bool, error) {
	until, err := storage.LockedUntil(ctx, b, key)
	if err != nil || !until.After(now) {
		return false, err
	}
	if res.Locked == nil {
		res.Locked = map[string]time.Time{}
	}
	res.Locked[id] = until
	return true, nil
}

// Prune applies policy to the repository at now. For each snapshot to
// delete it removes the manifest first and then the data object, so a
// crash halfway leaves at worst an unreferenced data object (invisible to
// every reader), never a manifest without its data. Every failed delete is
// reported: the error joins them all and Failures counts them; Prune goes
// on with the other snapshots. policy.Pins is replaced by the pins stored
// in the repository. With opts.DryRun nothing is changed.
func Prune(ctx context.Context, b storage.Backend, policy Policy, now time.Time, opts PruneOptions) (*PruneResult, error) {
	// Generations first: a base snapshot listed below whose generation is
	// not listed belongs to a generation being started (Plan keeps it).
	gens, err := ListGenerations(ctx, b)
	if err != nil {
		return nil, err
	}
	if gens == nil {
		gens = []*Generation{}
	}
	policy.Generations = gens
	snaps, bad, err := ListSnapshots(ctx, b)
	if err != nil {
		return nil, err
	}
	pins, err := ListPins(ctx, b)
	if err != nil {
		return nil, err
	}
	policy.Pins = pins
	ranges, err := segmentRanges(ctx, b, gens)
	if err != nil {
		return nil, err
	}
	keepLogHeads(&policy, gens, ranges, snaps)
	res := &PruneResult{Decisions: Plan(snaps, policy, now)}
	for _, e := range bad {
		res.Unreadable = append(res.Unreadable, e.Error())
		res.UnreadableErrs = append(res.UnreadableErrs, e)
	}
	// Generations go before snapshots: a reader never sees a generation
	// whose base is already gone.
	errs := pruneLogs(ctx, b, gens, policy, now, opts, res)
	errs = append(errs, trimLogs(ctx, b, snaps, ranges, policy, now, opts, res)...)
	for _, d := range res.Decisions {
		s := d.Snapshot
		if d.Keep {
			res.KeptBytes += s.Object.StoredBytes
			continue
		}
		// The manifest is written last, so its lock ends last.
		if locked, err := res.lockedUntil(ctx, b, s.ID, SnapshotManifestKey(s.ID), now); locked || err != nil {
			if err != nil {
				res.Failures++
				errs = append(errs, fmt.Errorf("check the retention lock of snapshot %s: %w", s.ID, err))
			}
			res.KeptBytes += s.Object.StoredBytes
			continue
		}
		if opts.DryRun {
			res.Deleted = append(res.Deleted, s.ID)
			res.FreedBytes += s.Object.StoredBytes
			if opts.OnDelete != nil {
				opts.OnDelete(s)
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		// Re-read the manifest just before deleting it: a `redback keep`
		// since the listing wins (this narrows the race; the lease makes
		// prune itself single-writer).
		if cur, err := ReadSnapshot(ctx, b, s.ID); err == nil && cur.Keep {
			res.KeptBytes += s.Object.StoredBytes
			continue
		} else if err != nil && !errors.Is(err, ErrNoSnapshot) {
			res.Failures++
			res.KeptBytes += s.Object.StoredBytes
			errs = append(errs, fmt.Errorf("re-read snapshot %s before deleting it: %w", s.ID, err))
			continue
		}
		if err := b.Delete(ctx, SnapshotManifestKey(s.ID)); err != nil {
			res.Failures++
			res.KeptBytes += s.Object.StoredBytes
			errs = append(errs, fmt.Errorf("delete snapshot %s manifest: %w", s.ID, err))
			continue
		}
		res.Deleted = append(res.Deleted, s.ID)
		if opts.OnDelete != nil {
			opts.OnDelete(s)
		}
		if err := b.Delete(ctx, s.Object.Key); err != nil {
			res.Failures++
			errs = append(errs, fmt.Errorf("delete snapshot %s data %s (its manifest is gone; the object is unreferenced): %w", s.ID, s.Object.Key, err))
			continue
		}
		res.FreedBytes += s.Object.StoredBytes
	}
	if !opts.DryRun {
		for _, p := range pins {
			if p.Expires.After(now) {
				continue
			}
			if err := RemovePin(ctx, b, p.ID); err != nil {
				res.Failures++
				errs = append(errs, err)
				continue
			}
			res.ExpiredPins = append(res.ExpiredPins, p.ID)
		}
		// The index is a cache: failing to refresh it fails nothing.
		_ = IndexManifests(ctx, b)
	}
	return res, errors.Join(errs...)
}

// pruneLogs removes the log generations PlanGenerations does not keep,
// each with all its segments and its heartbeat (quiet.json), whatever happens to its base snapshot (Plan
// kept the base of every kept generation), so no generation is ever left
// without its base. The generation manifest goes first (the generation is
// then invisible to every reader), then each segment manifest and its
// data; segment manifests left behind by an interrupted prune (no
// generation manifest) are removed on the next run.
func pruneLogs(ctx context.Context, b storage.Backend, gens []*Generation, policy Policy, now time.Time, opts PruneOptions, res *PruneResult) []error {
	res.KeptGenerations = map[string]string{}
	var doomed []string
	for _, d := range PlanGenerations(gens, policy, now) {
		if d.Keep {
			res.KeptGenerations[d.ID] = d.Reason
			continue
		}
		doomed = append(doomed, d.ID)
		if res.DeletedGenerationReasons == nil {
			res.DeletedGenerationReasons = map[string]string{}
		}
		res.DeletedGenerationReasons[d.ID] = d.Reason
	}
	var errs []error
	for _, id := range doomed {
		if locked, err := generationLocked(ctx, b, id, now, res); locked || err != nil {
			if err != nil {
				res.Failures++
				errs = append(errs, err)
			}
			res.KeptGenerations[id] = "retention lock (S3 Object Lock)"
			delete(res.DeletedGenerationReasons, id)
			continue
		}
		res.DeletedGenerations = append(res.DeletedGenerations, id)
		if opts.DryRun {
			continue
		}
		if err := b.Delete(ctx, GenerationKey(id)); err != nil {
			res.Failures++
			errs = append(errs, fmt.Errorf("delete generation %s manifest: %w", id, err))
			continue
		}
		errs = append(errs, deleteSegments(ctx, b, id, res)...)
	}
	if opts.DryRun {
		return errs
	}
	// Leftovers of an interrupted prune: segment manifests without a generation.
	known := map[string]bool{}
	for _, g := range gens {
		known[g.ID] = true
	}
	orphans := map[string]bool{}
	err := b.List(ctx, GenerationPrefix, func(oi storage.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Key, GenerationPrefix)
		if id, _, ok := strings.Cut(rest, "/segs/"); ok && !known[id] {
			orphans[id] = true
		}
		if id, ok := strings.CutSuffix(rest, "/quiet.json"); ok && !known[id] {
			orphans[id] = true
		}
		return nil
	})
	if err != nil {
		return append(errs, fmt.Errorf("list generations: %w", err))
	}
	for id := range orphans {
		if _, err := b.Stat(ctx, GenerationKey(id)); err == nil {
			continue // created since the listing
		}
		errs = append(errs, deleteSegments(ctx, b, id, res)...)
	}
	return errs
}

// segmentRanges lists the segments of every generation that continues no
// other (the ones whose log may be trimmed), by their keys, sorted by
// Start.
func segmentRanges(ctx context.Context, b storage.Backend, gens []*Generation) (map[string][]*Segment, error) {
	out := map[string][]*Segment{}
	for _, g := range gens {
		if g.Parent != "" {
			continue
		}
		var segs []*Segment
		if err := b.List(ctx, SegmentPrefix(g.ID), func(oi storage.ObjectInfo) error {
			if start, end, ok := segmentRange(g.ID, oi.Key); ok {
				segs = append(segs, &Segment{Generation: g.ID, Start: start, End: end})
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("list segments of %s: %w", g.ID, err)
		}
		sort.SliceStable(segs, func(i, j int) bool { return segs[i].Start < segs[j].Start })
		out[g.ID] = segs
	}
	return out, nil
}

// keepLogHeads makes policy keep the snapshot each trimmed log starts
// from now (LogAnchor): the log before it is gone, so without it nothing
// of the generation after it could be restored (a PITR window made longer
// since the trim moves the log anchor back, to a snapshot whose log is
// gone).
func keepLogHeads(policy *Policy, gens []*Generation, ranges map[string][]*Segment, snaps []*Snapshot) {
	heads := map[string]string{} // snapshot id -> generation
	for _, g := range gens {
		if a := LogAnchor(g, ranges[g.ID], snaps); a != nil {
			heads[a.ID] = g.ID
		}
	}
	if len(heads) == 0 {
		return
	}
	prev := policy.Pinned
	policy.Pinned = func(id string) (bool, string) {
		if g, ok := heads[id]; ok {
			return true, "the log of generation " + g + " starts from it (retention dropped the log before it)"
		}
		if prev != nil {
			return prev(id)
		}
		return false, ""
	}
}

// trimLogs drops, in each generation LogAnchors names, the segments that
// end at or before its anchor's offset (or the offset of an older snapshot
// of it that a live pin holds: a restore from it reads the log after it),
// oldest first so that an interrupted run leaves the log's tail, and never
// the newest segment (the log's end stays known). A segment under a
// storage retention lock stops the trim there.
func trimLogs(ctx context.Context, b storage.Backend, snaps []*Snapshot, ranges map[string][]*Segment, policy Policy, now time.Time, opts PruneOptions, res *PruneResult) []error {
	byID := make(map[string]*Snapshot, len(snaps))
	for _, s := range snaps {
		byID[s.ID] = s
	}
	anchors := LogAnchors(snaps, policy, now)
	ids := make([]string, 0, len(anchors))
	for id := range anchors {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		floor := anchors[id].Source.Offset
		for _, p := range policy.Pins {
			s := byID[p.Snapshot]
			if !p.Expires.After(now) || s == nil || s.Generation != id {
				continue
			}
			if s.FromLog() {
				floor = min(floor, s.Source.Offset)
			} else {
				floor = -1 // the base: a restore from it reads the whole log
			}
		}
		segs := ranges[id]
		n := 0
		for i, sg := range segs {
			if i == len(segs)-1 || sg.End > floor {
				break
			}
			key := SegmentKey(id, sg.Start, sg.End)
			if storage.Locks(b) {
				locked, err := res.lockedUntil(ctx, b, key, key, now)
				if err != nil {
					res.Failures++
					errs = append(errs, fmt.Errorf("check the retention lock of segment %s: %w", key, err))
				}
				if locked || err != nil {
					break
				}
			}
			if !opts.DryRun {
				if err := ctx.Err(); err != nil {
					return append(errs, err)
				}
				if err := deleteSegment(ctx, b, id, key, res); err != nil {
					errs = append(errs, err)
					break // keep the log's tail contiguous
				}
			}
			n++
		}
		if n == 0 {
			continue
		}
		if res.TrimmedLogs == nil {
			res.TrimmedLogs = map[string]int64{}
		}
		res.TrimmedLogs[id] = floor
		res.TrimmedSegments += n
	}
	return errs
}

// generationLocked reports whether generation id is under a storage
// retention lock: its newest segment manifest (written last), or its own
// manifest when it has no segment.
func generationLocked(ctx context.Context, b storage.Backend, id string, now time.Time, res *PruneResult) (bool, error) {
	if !storage.Locks(b) {
		return false, nil
	}
	newest := GenerationKey(id)
	if err := b.List(ctx, SegmentPrefix(id), func(oi storage.ObjectInfo) error {
		newest = oi.Key
		return nil
	}); err != nil {
		return false, fmt.Errorf("list segments of %s: %w", id, err)
	}
	locked, err := res.lockedUntil(ctx, b, id, newest, now)
	if err != nil {
		return false, fmt.Errorf("check the retention lock of generation %s: %w", id, err)
	}
	return locked, nil
}

// deleteSegments removes every segment of generation gen, manifest first.
func deleteSegments(ctx context.Context, b storage.Backend, gen string, res *PruneResult) []error {
	var keys []string
	if err := b.List(ctx, SegmentPrefix(gen), func(oi storage.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}); err != nil {
		return []error{fmt.Errorf("list segments of %s: %w", gen, err)}
	}
	var errs []error
	for _, k := range keys {
		if err := deleteSegment(ctx, b, gen, k, res); err != nil {
			errs = append(errs, err)
		}
	}
	// The heartbeat last: a generation's leftovers are found by it too.
	if err := b.Delete(ctx, QuietKey(gen)); err != nil && !errors.Is(err, storage.ErrNotExist) {
		res.Failures++
		errs = append(errs, fmt.Errorf("delete heartbeat %s: %w", QuietKey(gen), err))
	}
	return errs
}

// deleteSegment removes the segment of generation gen whose manifest is
// at key: the manifest first, then its data.
func deleteSegment(ctx context.Context, b storage.Backend, gen, key string, res *PruneResult) error {
	var s Segment
	dataKey := ""
	if err := GetJSON(ctx, b, key, &s); err == nil && strings.HasPrefix(s.Object.Key, SegmentDataPref+gen+"/") {
		dataKey = s.Object.Key
	}
	if err := b.Delete(ctx, key); err != nil {
		res.Failures++
		return fmt.Errorf("delete segment manifest %s: %w", key, err)
	}
	if dataKey == "" {
		return nil
	}
	if err := b.Delete(ctx, dataKey); err != nil {
		res.Failures++
		return fmt.Errorf("delete segment data %s (its manifest is gone): %w", dataKey, err)
	}
	res.FreedBytes += s.Object.StoredBytes
	return nil
}
