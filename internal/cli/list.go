package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"redback/internal/ops"
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

// listOutput is the --json shape of `redback list`: the operations layer's
// Listing, which GET /api/v1/timeline embeds too.
type listOutput = ops.Listing

func runList(ctx context.Context, e *env, o *listOpts) error {
	repo, err := openRepo(ctx, e, o.repo)
	if err != nil {
		return err
	}
	defer repo.Close()
	out, damaged, err := ops.List(ctx, repo)
	if err != nil {
		return err
	}
	snaps, ws := out.Snapshots, out.Generations
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
	if damaged {
		return &silentError{code: ExitVerify}
	}
	return nil
}
