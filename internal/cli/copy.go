package cli

import (
	"errors"
	"fmt"
	"time"

	"strings"

	"github.com/spf13/cobra"

	"redback/internal/catalog"
	"redback/internal/repocopy"
)

type copyOpts struct {
	from, to, name, since string
	dryRun, json          bool
}

const copyTry = "redback copy --from s3://bucket/redis/cache-a --to gs://dr-bucket/redis/cache-a"

func newCopyCmd(e *env) *cobra.Command {
	o := &copyOpts{}
	c := &cobra.Command{
		Use:   "copy --from URL --to URL [--name N] [--since T] [--dry-run]",
		Short: "Copy a repository to another store (incremental, verified, resumable)",
		Long: `Copy a repository (snapshots, generations, segments, keep marks) to another
repository on any backend: a second copy in another region or another cloud.
Only what the target lacks is copied. Every data object is streamed through a
check of its size and sha256 against the manifest that commits it, and a
manifest is written only after all its data is on the target, so the target is
a consistent repository at every moment; a killed copy resumes where it
stopped when run again. Leases and pins are not copied, and nothing is ever
deleted from the target: run 'redback prune --repo TARGET' with its own policy.

A source object that fails its check is not copied, nor the manifests that
commit it; the rest is, and the command exits 3 naming the objects.

--since T copies only snapshots and segments that end at or after T (and
whatever else has no time: generations, the marker). --name N copies only
source N of a repository holding several (its objects, its source record and
the repository marker).`,
		Example: "  " + copyTry + "\n  redback copy --from /var/lib/redback/cache-a --to azblob://backups/cache-a?account=acct --dry-run",
		Args:    exactArgs(0, copyTry),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCopy(cmd, e, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.from, "from", "", "source repository URL")
	f.StringVar(&o.to, "to", "", "target repository URL")
	f.StringVar(&o.name, "name", "", "copy only the objects of this named source")
	f.StringVar(&o.since, "since", "", "copy only snapshots and segments ending at or after this time: "+timeFormatsHelp)
	f.BoolVar(&o.dryRun, "dry-run", false, "say what would be copied, write nothing")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	return c
}

func runCopy(cmd *cobra.Command, e *env, o *copyOpts) error {
	ctx := cmd.Context()
	if o.from == "" || o.to == "" {
		return usagef(copyTry, "--from and --to are required")
	}
	if o.from == o.to {
		return usagef(copyTry, "--from and --to are the same repository")
	}
	opts := repocopy.Options{DryRun: o.dryRun, Logger: e.log}
	if o.since != "" {
		t, err := parseTime("since", o.since)
		if err != nil {
			return err
		}
		opts.Since = t
	}
	src, err := openRepo(ctx, e, o.from)
	if err != nil {
		return err
	}
	defer src.Close()
	if o.name != "" {
		repo, err := catalog.OpenRepository(ctx, src)
		if err != nil {
			return err
		}
		ref, ok := repo.Source(o.name)
		if !ok {
			return usagef(copyTry+" --name "+strings.Join(repo.Names(), "|"), "--name %s: no such source in %s (it holds: %s)", o.name, src.Location(), strings.Join(repo.Names(), ", "))
		}
		opts.Include = ref.Holds
	}
	dst, err := openRepo(ctx, e, o.to)
	if err != nil {
		return err
	}
	defer dst.Close()
	start := time.Now()
	res, err := repocopy.Copy(ctx, src, dst, opts)
	var de *repocopy.DamageError
	if err != nil && !errors.As(err, &de) {
		return err
	}
	if o.json {
		out := struct {
			From   string `json:"from"`
			To     string `json:"to"`
			DryRun bool   `json:"dry_run"`
			*repocopy.Result
		}{src.Location(), dst.Location(), o.dryRun, res}
		if eerr := printJSON(e, out); eerr != nil {
			return eerr
		}
		if de != nil {
			return &silentError{code: ExitVerify}
		}
		return nil
	}
	verb := "copied"
	if o.dryRun {
		verb = "would copy"
	}
	fmt.Fprintf(e.Out, "%s %d of %d objects (%d bytes) from %s to %s in %s; %d already there, %d verified against their manifests",
		verb, res.Copied, res.Objects, res.CopiedBytes, src.Location(), dst.Location(), time.Since(start).Round(time.Millisecond), res.Present, res.Verified)
	if res.Unreferenced > 0 {
		fmt.Fprintf(e.Out, ", %d named by no manifest (copied unverified)", res.Unreferenced)
	}
	if res.SkippedSince > 0 {
		fmt.Fprintf(e.Out, ", %d manifests older than --since skipped", res.SkippedSince)
	}
	fmt.Fprintln(e.Out)
	if !res.Newest.IsZero() {
		fmt.Fprintf(e.Out, "the copy holds data up to %s\n", res.Newest.UTC().Format(time.RFC3339Nano))
	}
	if de != nil {
		for _, k := range res.Held {
			fmt.Fprintf(e.Out, "✗ manifest %s not copied: its data failed verification\n", k)
		}
		return &VerifyError{Err: de}
	}
	return nil
}
