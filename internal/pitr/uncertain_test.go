package pitr_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"redback/internal/pitr"
	"redback/internal/pitr/pitrtest"
	"redback/internal/storage/mem"
)

// Commands re-sent after a reconnect carry an interval (From, Ms]: a time
// inside it is refused with the nearest exact points, or restored to the
// side --uncertain picks; a time outside it is exact (issue 23, defect 2).
// A time target never includes control traffic received after it.
func TestPlan_UncertainInterval(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	// c and d were re-sent after a reconnect: they ran after b's time and
	// at or before t0+45.
	s := newSynthMod(t, b, "uncertain", 0, nil, func(cs []pitrtest.Cmd) {
		for i := 3; i <= 4; i++ {
			cs[i].From, cs[i].Ms = cs[0].Ms+10, cs[0].Ms+45
		}
	}, "SET a 1", "SET b 2", "PING", "SET c 3", "SET d 4", "SET e 5")
	t0 := s.t0
	at := func(ms int64) pitr.Target { tg := pitr.AtTime(time.UnixMilli(ms)); tg.Generation = s.g.ID; return tg }
	endB := s.cmds[1].Offset + s.cmds[1].Len()

	_, err := pitr.NewPlan(ctx, b, at(t0+15), pitr.Options{})
	var ue *pitr.UncertainError
	if !errors.As(err, &ue) || !errors.Is(err, pitr.ErrUncertain) || ue.Commands != 2 ||
		ue.From.UnixMilli() != t0+10 || ue.To.UnixMilli() != t0+45 || !strings.Contains(err.Error(), "--uncertain") {
		t.Fatalf("inside the interval: %v", err)
	}
	for _, tt := range []struct {
		name      string
		tg        pitr.Target
		uncertain string
		want      string
		offset    int64
		timeMs    int64
	}{
		{"earliest", at(t0 + 15), pitr.UncertainEarliest, "SELECT 0|SET a 1|SET b 2", endB, t0 + 10},
		{"latest", at(t0 + 15), pitr.UncertainLatest, "SELECT 0|SET a 1|SET b 2|SET c 3|SET d 4", s.cmds[4].Offset + s.cmds[4].Len(), t0 + 45},
		{"inside, elsewhere", at(t0 + 25), "", "", 0, 0},
		{"at the upper bound: exact", at(t0 + 45), "", "SELECT 0|SET a 1|SET b 2|SET c 3|SET d 4", s.cmds[4].Offset + s.cmds[4].Len(), t0 + 45},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tg := tt.tg
			tg.Uncertain = tt.uncertain
			p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{})
			if tt.want == "" {
				if !errors.Is(err, pitr.ErrUncertain) {
					t.Fatalf("want a refusal, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(dirCommands(t, p), "|"); got != tt.want {
				t.Errorf("replayed %s, want %s", got, tt.want)
			}
			if p.Offset != tt.offset || p.Time.UnixMilli() != tt.timeMs {
				t.Errorf("offset %d time %d, want %d %d", p.Offset, p.Time.UnixMilli(), tt.offset, tt.timeMs)
			}
			if tt.uncertain != "" && (len(p.Notes) == 0 || !strings.Contains(strings.Join(p.Notes, " "), "--uncertain "+tt.uncertain)) {
				t.Errorf("notes %q", p.Notes)
			}
		})
	}
	// At b's time exactly: a and b, and not the PING received after it.
	p, err := pitr.NewPlan(ctx, b, at(t0+10), pitr.Options{})
	if err != nil || p.Offset != endB || p.Time.UnixMilli() != t0+10 {
		t.Fatalf("at b: offset %d (want %d) time %v: %v", p.Offset, endB, p.Time, err)
	}
	ws, err := pitr.Windows(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range ws {
		if w.Generation == s.g.ID {
			found = len(w.Uncertain) == 1 && w.Uncertain[0].From.UnixMilli() == t0+10 && w.Uncertain[0].To.UnixMilli() == t0+45 &&
				strings.Contains(w.String(), "times uncertain between")
		}
	}
	if !found {
		t.Errorf("windows %+v", ws)
	}
	var bounded []string
	err = pitr.Log(ctx, b, pitr.Filter{Generation: s.g.ID}, pitr.Options{}, func(c *pitr.Command) error {
		if !c.TimeFrom.IsZero() {
			bounded = append(bounded, c.Name+" "+c.When())
		}
		return nil
	})
	if err != nil || len(bounded) != 2 || !strings.Contains(bounded[0], "between") {
		t.Errorf("log: %q %v", bounded, err)
	}
}
