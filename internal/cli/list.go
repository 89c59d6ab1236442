package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"redback/internal/ops"
)

type listOpts struct {
	repo, name string
	json       bool
}

func newListCmd(e *env) *cobra.Command {
	o := &listOpts{}
	c := &cobra.Command{
		Use:   "list --repo URL [--name NAME]",
		Short: "List the snapshots in a repository, newest first, by source",
		Long: `List the snapshots and log generations of a repository, newest first. A
repository holds one or more sources (servers), each with its own history:
without --name, every source is listed under its name. A location that holds
no repository is an error (exit 1). Without --name, the backup sets of
clusters (one snapshot per shard, restored as a unit) follow.`,
		Example: "  redback list --repo file:///var/lib/redback/cache-a --json",
		Args:    exactArgs(0, "redback list --repo file:///backups/redis"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runList(cmd.Context(), e, o)
		},
	}
	c.Flags().StringVar(&o.repo, "repo", "", "repository URL")
	addNameFlag(c.Flags(), &o.name, false)
	c.Flags().BoolVar(&o.json, "json", false, "print JSON (every snapshot and generation names its source_name)")
	return c
}

// listOutput is the --json shape of `redback list`: the operations layer's
// Listing, which GET /api/v1/timeline embeds too.
type listOutput = ops.Listing

func runList(ctx context.Context, e *env, o *listOpts) error {
	set, err := openSources(ctx, e, o.repo, o.name, "redback list --repo "+o.repo)
	if err != nil {
		return err
	}
	defer set.Close()
	var out *ops.Listing
	failed := false
	for i, src := range set.sources {
		one, damaged, err := ops.List(ctx, set.view(src), src.Name)
		if err != nil {
			if len(set.sources) > 1 {
				err = fmt.Errorf("source %s: %w", src.Name, err)
			}
			return err
		}
		failed = failed || damaged
		if out == nil {
			out = one
		} else {
			out.Add(one)
		}
		if o.json {
			continue
		}
		if len(set.sources) > 1 {
			if i > 0 {
				fmt.Fprintln(e.Out)
			}
			fmt.Fprintf(e.Out, "== source %s ==\n", src.Name)
		}
		snaps := one.SnapshotList()
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
		printWindows(e.Out, one.Windows())
	}
	if o.name == "" && out != nil {
		damaged, err := out.AddSets(ctx, set.base)
		if err != nil {
			return err
		}
		failed = failed || damaged
		if len(out.Sets) > 0 && !o.json {
			fmt.Fprintf(e.Out, "\n== backup sets (clusters) ==\n")
			tw := tabwriter.NewWriter(e.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SET\tCLUSTER\tTIME\tSHARDS\tKEYS\tUNION DIGEST")
			for _, s := range out.Sets {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", s.ID, s.Cluster, s.EndTime.Local().Format(time.DateTime), len(s.Shards), s.Keys, s.Digest[:min(12, len(s.Digest))])
			}
			tw.Flush()
		}
	}
	if o.json {
		if err := printJSON(e, out); err != nil {
			return err
		}
	} else {
		for _, p := range out.Problems {
			fmt.Fprintf(e.Err, "problem: %s\n", p)
		}
	}
	if failed {
		return &silentError{code: ExitVerify}
	}
	return nil
}
