package drill

import (
	"fmt"
	"io"
	"strings"
	"time"

	"redback/internal/progress"
)

// phaseOrder lists the phases in the order they run.
var phaseOrder = []string{PhaseFetch, PhaseRestore, PhaseLoad, PhaseReplay, PhaseChecks}

// Markdown writes the report for people: what was restored, each check with
// ✓ or ✗, phase timings, RTO and RPO against the objective.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	verdict := "PASSED"
	if !r.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "# Recovery drill %s\n\n", verdict)
	fmt.Fprintf(&b, "- **Started:** %s\n", r.Started.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- **Repository:** `%s`\n", r.Repo)
	pitr := r.Point != nil && r.Point.Kind == PointPITR
	if r.Point != nil && !r.Point.Requested.IsZero() {
		fmt.Fprintf(&b, "- **Asked for:** the state at %s\n", r.Point.Requested.UTC().Format(time.RFC3339Nano))
	}
	if pitr {
		fmt.Fprintf(&b, "- **Point in time:** generation `%s`, offset %d, last command received %s\n", r.Point.Generation, r.Point.Offset, fmtTime(r.Point.Time))
		fmt.Fprintf(&b, "- **Base snapshot:** `%s`, taken %s; base and log %s stored, %s raw\n", r.Snapshot, r.SnapshotTime.UTC().Format(time.RFC3339), progress.HumanBytes(r.StoredBytes), progress.HumanBytes(r.RawBytes))
	} else {
		fmt.Fprintf(&b, "- **Snapshot:** `%s`, taken %s\n", r.Snapshot, r.SnapshotTime.UTC().Format(time.RFC3339))
		fmt.Fprintf(&b, "- **Object:** `%s`, %s stored, %s RDB\n", r.Object, progress.HumanBytes(r.StoredBytes), progress.HumanBytes(r.RawBytes))
	}
	if r.RedisVersion != "" {
		fmt.Fprintf(&b, "- **Scratch server:** %s %s (`%s`)\n", family(r.ServerFamily), r.RedisVersion, r.RedisServer)
	}
	if pitr {
		fmt.Fprintf(&b, "- **Keys:** %d after loading the AOF dir, %d after the replay\n", r.Keys, r.ExpectedKeys)
		if r.AOFDigest != "" {
			fmt.Fprintf(&b, "- **DEBUG DIGEST:** `%s` (AOF dir loaded by redis-server), `%s` (log replayed by redback)", r.AOFDigest, r.ReplayDigest)
		}
	} else {
		fmt.Fprintf(&b, "- **Keys:** %d restored, %d expected", r.Keys, r.ExpectedKeys)
	}
	if r.KeysAlreadyExpired > 0 && !pitr {
		fmt.Fprintf(&b, " (%d had already expired; kept for the digest proof)", r.KeysAlreadyExpired)
	}
	b.WriteString("\n\n## Checks\n\n")
	if len(r.Checks) == 0 {
		b.WriteString("No check ran: the drill stopped before restoring anything.\n")
	}
	for _, c := range r.Checks {
		mark := "✓"
		if !c.OK {
			mark = "✗"
		}
		fmt.Fprintf(&b, "- %s **%s**: %s\n", mark, c.Name, oneLine(c.Detail))
	}
	if len(r.Mismatches) > 0 {
		b.WriteString("\nKeys that differ (first ones):\n\n")
		for _, m := range r.Mismatches {
			fmt.Fprintf(&b, "- %s\n", m)
		}
	}
	b.WriteString("\n## Timings\n\n| phase | seconds |\n|---|---:|\n")
	for _, p := range phaseOrder {
		if s, ok := r.Phases[p]; ok {
			fmt.Fprintf(&b, "| %s | %.3f |\n", p, s)
		}
	}
	if pitr {
		fmt.Fprintf(&b, "| **RTO** (restore + load: serving) | **%.3f** |\n", r.RTOSeconds)
	} else {
		fmt.Fprintf(&b, "| **RTO** (fetch + restore + load: serving) | **%.3f** |\n", r.RTOSeconds)
	}
	fmt.Fprintf(&b, "| total (checks included) | %.3f |\n", r.TotalSeconds)
	b.WriteString("\n## Objectives\n\n")
	if r.RTOObjectiveSeconds > 0 {
		met := "met ✓"
		if !r.RTOMet {
			met = "missed ✗"
		}
		fmt.Fprintf(&b, "- **RTO:** %s against an objective of %s: %s\n", dur(r.RTOSeconds), dur(r.RTOObjectiveSeconds), met)
	} else {
		fmt.Fprintf(&b, "- **RTO:** %s (no objective given)\n", dur(r.RTOSeconds))
	}
	if pitr {
		fmt.Fprintf(&b, "- **RPO:** %s (time from the drilled point to the start of the drill; asked for now or later, that point is the newest durable one)\n", dur(r.RPOSeconds))
	} else {
		fmt.Fprintf(&b, "- **RPO:** %s (age of the drilled snapshot when the drill started)\n", dur(r.RPOSeconds))
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", oneLine(n))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

func dur(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// family is the server family's name, "redis" when unknown.
func family(f string) string {
	if f == "" {
		return "redis"
	}
	return f
}
