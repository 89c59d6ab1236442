package pitr_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"redback/internal/pitr"
	"redback/internal/pitr/pitrtest"
	"redback/internal/redistest"
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

// Right after a full sync the primary sends what it buffered while the
// base snapshot was transferred (the SELECT before its first time marker,
// writes): those ran after the fork at times only bounded by an interval
// that holds the base's time. The window then starts where that interval
// ends, and every window's From and To restore, digest-equal to the
// commands they name (issue 23: `--at <window From>` was refused).
func TestPlan_WindowEdgesAfterFullSync(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	for _, tt := range []struct {
		name     string
		buffered int // commands sent with the full sync's bound
		lines    []string
	}{
		{"select only", 1, []string{"SELECT 0", "SET a 1", "SET b 2"}},
		{"writes buffered", 3, []string{"SELECT 0", "SET a 1", "INCR n", "SET b 2", "SET c 3"}},
		{"nothing buffered", 0, []string{"SET a 1", "SET b 2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSynthMod(t, b, strings.ReplaceAll(tt.name, " ", ""), 0, nil, func(cs []pitrtest.Cmd) {
				if tt.buffered == 0 {
					return
				}
				hi := cs[tt.buffered-1].Ms
				for i := 0; i < tt.buffered; i++ {
					cs[i].From, cs[i].Ms = cs[0].Ms-5000, hi // from before the base's transfer
				}
			}, tt.lines...)
			var w *pitr.Window
			ws, err := pitr.Windows(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range ws {
				if ws[i].Generation == s.g.ID {
					w = &ws[i]
				}
			}
			if w == nil {
				t.Fatalf("no window for %s in %+v", s.g.ID, ws)
			}
			if len(w.Uncertain) != 0 {
				t.Errorf("uncertain intervals before the window start are listed: %+v", w.Uncertain)
			}
			if tt.buffered > 0 && w.From.UnixMilli() != s.cmds[tt.buffered-1].Ms {
				t.Errorf("window from %s, want the end of the buffered interval %d", w.From, s.cmds[tt.buffered-1].Ms)
			}
			for _, edge := range []struct {
				name string
				at   time.Time
				n    int // commands the state holds
			}{{"from", w.From, tt.buffered}, {"to", w.To, len(tt.lines)}} {
				tg := pitr.AtTime(edge.at)
				tg.Generation = s.g.ID
				p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{})
				if err != nil {
					t.Fatalf("--at window %s %s: %v", edge.name, edge.at, err)
				}
				if got, want := toDir(t, p), applied(t, tt.lines[:edge.n]); got != want {
					t.Errorf("--at window %s: digest %s, want %s (the first %d commands)", edge.name, got, want, edge.n)
				}
			}
			if tt.buffered == 0 {
				return
			}
			// Inside the buffered interval: refused, naming the offset of
			// the state before them (no time before them is in the window).
			tg := pitr.AtTime(w.From.Add(-time.Millisecond))
			tg.Generation = s.g.ID
			_, err = pitr.NewPlan(ctx, b, tg, pitr.Options{})
			var ue *pitr.UncertainError
			if !errors.As(err, &ue) || !ue.ByOffset || ue.BeforeOffset != s.g.StartOffset || !strings.Contains(err.Error(), "--to-offset") {
				t.Fatalf("inside the buffered interval: %v", err)
			}
			tg = pitr.AtOffset(ue.BeforeOffset)
			tg.Generation = s.g.ID
			p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := toDir(t, p), applied(t, nil); got != want {
				t.Errorf("--to-offset %d: digest %s, want the base's %s", ue.BeforeOffset, got, want)
			}
		})
	}
}

// applied returns the digest of an empty server after lines.
func applied(t *testing.T, lines []string) string {
	t.Helper()
	s := redistest.Start(t)
	defer s.Stop()
	for _, l := range lines {
		var args []any
		for _, w := range strings.Fields(l) {
			args = append(args, w)
		}
		if err := s.Client().Do(t.Context(), args...).Err(); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
	return s.Digest(t.Context())
}
