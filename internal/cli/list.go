package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"redback/internal/catalog"
	"redback/internal/pitr"
)

type listOpts struct {
	repo string
	json bool
}

func newListCmd(e *env) *cobra.Command {
	o := &listOpts{}
	c := &cobra.Command{
		Use:     "list --repo URL",
		Short:   "List the snapshots in a repository, newest first",
		Example: "  redback list --repo file:///var/lib/redback/cache-a --json",
		Args:    exactArgs(0, "redback list --repo file:///backups/redis"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runList(cmd.Context(), e, o)
		},
	}
	c.Flags().StringVar(&o.repo, "repo", "", "repository URL")
	c.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return c
}

// listOutput is the --json shape of `redback list`.
type listOutput struct {
	Repo      string              `json:"repo"`
	Snapshots []*catalog.Snapshot `json:"snapshots"`
	// Generations are the log generations with their point-in-time windows.
	Generations []pitr.Window `json:"generations"`
	Problems    []string      `json:"problems"`
}

func runList(ctx context.Context, e *env, o *listOpts) error {
	repo, err := openRepo(ctx, e, o.repo)
	if err != nil {
		return err
	}
	defer repo.Close()
	snaps, bad, err := catalog.ListSnapshots(ctx, repo)
	if err != nil {
		return err
	}
	out := listOutput{Repo: repo.Location(), Snapshots: snaps, Problems: []string{}}
	for _, b := range bad {
		out.Problems = append(out.Problems, b.Error())
	}
	ws, err := pitr.Windows(ctx, repo)
	if err != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("log generations: %v", err))
		bad = append(bad, err)
	}
	out.Generations = ws
	if out.Generations == nil {
		out.Generations = []pitr.Window{}
	}
	if o.json {
		enc := json.NewEncoder(e.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.Out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tKEYS\tSIZE\tSTORED\tDIGEST\tVERIFIED\tMETHOD")
		for _, s := range snaps {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%v\t%s\n", s.ID, s.EndTime.Local().Format(time.DateTime),
				s.Census.Keys, humanBytes(s.Object.RawBytes), humanBytes(s.Object.StoredBytes), s.Digest[:min(12, len(s.Digest))], s.Verified, s.Method)
		}
		tw.Flush()
		if len(snaps) == 0 {
			fmt.Fprintln(e.Out, "(no snapshots)")
		}
		fmt.Fprintln(e.Out)
		printWindows(e.Out, ws)
		for _, p := range out.Problems {
			fmt.Fprintf(e.Err, "problem: %s\n", p)
		}
	}
	if len(bad) > 0 {
		return &silentError{code: ExitVerify}
	}
	return nil
}
