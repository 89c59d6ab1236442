package ops

import (
	"context"
	"errors"
	"time"

	"redback/internal/pitr"
)

// PointFacts are what restoring one point of a source would do, decided
// exactly as a restore decides it (pitr.NewPlan) and without writing
// anything: GET /api/v1/point. The page shows them for a selected moment or
// event instead of an estimate.
type PointFacts struct {
	SourceName string `json:"source_name"`
	Target     string `json:"target"`
	// Generation and BaseSnapshot are the log generation replayed and the
	// snapshot loaded first (taken at BaseTime, at offset FromOffset).
	Generation   string    `json:"generation"`
	BaseSnapshot string    `json:"base_snapshot"`
	BaseTime     time.Time `json:"base_time"`
	FromOffset   int64     `json:"from_offset"`
	// Offset is the replication offset of the restored state; LogBytes =
	// Offset - FromOffset is how much log is replayed, from Segments
	// segments.
	Offset   int64 `json:"offset"`
	LogBytes int64 `json:"log_bytes"`
	Segments int   `json:"segments"`
	// Time is when the last command replayed was received (the base's
	// time when none is).
	Time time.Time `json:"time"`
	// Match is, for a point before a command, the command restored to just
	// before.
	Match *pitr.Command `json:"match,omitempty"`
	Notes []string      `json:"notes"`
	// Uncertain is set, and the rest empty, when the time falls where the
	// log only bounds when commands ran: a restore refuses it unless
	// --uncertain earliest (the state at From) or latest (at To) is given.
	Uncertain *UncertainPoint `json:"uncertain,omitempty"`
}

// UncertainPoint is a time inside an uncertain interval of the log.
type UncertainPoint struct {
	Generation string    `json:"generation"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Commands   int64     `json:"commands"`
}

// Point plans a restore of src to t and returns its facts. A time inside an
// uncertain interval is not an error: the facts say so.
func Point(ctx context.Context, src Source, t pitr.Target) (*PointFacts, error) {
	f := &PointFacts{SourceName: src.Name, Target: t.String(), Notes: []string{}}
	p, err := pitr.NewPlan(ctx, src.Repo, t, pitr.Options{})
	var ue *pitr.UncertainError
	if errors.As(err, &ue) {
		f.Uncertain = &UncertainPoint{Generation: ue.Generation, From: ue.From, To: ue.To, Commands: ue.Commands}
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	f.Generation, f.BaseSnapshot, f.BaseTime = p.Generation.ID, p.Base.ID, p.Base.EndTime
	f.FromOffset, f.Offset, f.LogBytes = p.Generation.StartOffset, p.Offset, p.Offset-p.Generation.StartOffset
	f.Segments, f.Time, f.Match = len(p.Segments), p.Time, p.Match
	f.Notes = append(f.Notes, p.Notes...)
	return f, nil
}
