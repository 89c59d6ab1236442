package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"redback/internal/pitr"
)

// printWindows prints the point-in-time windows of a repository's log
// generations for `redback list`, and the newest durable point.
func printWindows(w io.Writer, ws []pitr.Window) {
	if len(ws) == 0 {
		fmt.Fprintln(w, "(no log generations: point-in-time restore needs `redback ship`)")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GENERATION\tFROM\tTO\tOFFSETS\tSEGMENTS\tCOMMANDS\tSTATE")
	for i := range ws {
		x := &ws[i]
		state := "live"
		if x.Ended {
			state = "ended"
			if x.EndReason != "" {
				state += " (" + x.EndReason + ")"
			}
		}
		if x.Reset {
			state = "RESET after " + x.ResetFrom + "; " + state
		}
		if x.Problem != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%d\t%d\tnot restorable: %s\n", x.Generation, x.Segments, x.Commands, x.Problem)
			continue
		}
		for _, g := range x.Gaps {
			if !g.Overlap {
				state += fmt.Sprintf("; log missing %d-%d", g.From, g.To)
			}
		}
		for _, u := range x.Uncertain {
			state += fmt.Sprintf("; times uncertain %s-%s", fmtWindowTime(u.From), fmtWindowTime(u.To))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d-%d\t%d\t%d\t%s\n", x.Generation, fmtWindowTime(x.From), fmtWindowTime(x.To),
			x.FromOffset, x.ToOffset, x.Segments, x.Commands, state)
	}
	tw.Flush()
	newest, note := pitr.NewestDurable(ws)
	if newest != nil {
		fmt.Fprintf(w, "newest durable point: %s (generation %s, offset %d)\n", fmtWindowTime(newest.To), newest.Generation, newest.ToOffset)
	}
	if note != "" {
		fmt.Fprintf(w, "note: %s\n", note)
	}
	for _, x := range ws {
		if x.Reset {
			fmt.Fprintf(w, "reset: generation %s: %s\n", x.Generation, x.ResetReason)
		}
	}
}

func fmtWindowTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
