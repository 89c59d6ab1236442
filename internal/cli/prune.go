package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"redback/internal/catalog"
	"redback/internal/config"
	"redback/internal/ops"
	"redback/internal/pack"
	"redback/internal/storage"
)

// policyFlags are the retention flags shared by prune and lifecycle.
type policyFlags struct {
	hourly, daily, weekly, monthly int
	within, pitr                   string
}

func (f *policyFlags) addFlags(fs *pflag.FlagSet) {
	d := catalog.DefaultPolicy()
	fs.IntVar(&f.hourly, "keep-hourly", d.Hourly, "keep the newest snapshot of each of the last N hours that have one (-1: all)")
	fs.IntVar(&f.daily, "keep-daily", d.Daily, "keep the newest snapshot of each of the last N days (-1: all)")
	fs.IntVar(&f.weekly, "keep-weekly", d.Weekly, "keep the newest snapshot of each of the last N ISO weeks (-1: all)")
	fs.IntVar(&f.monthly, "keep-monthly", d.Monthly, "keep the newest snapshot of each of the last N months (-1: forever)")
	fs.StringVar(&f.within, "keep-within", "0", "keep every snapshot newer than this (90m, 48h, 7d)")
	fs.StringVar(&f.pitr, "keep-pitr", "7d", "point-in-time window: keep the generation bases it needs")
}

func (f *policyFlags) policy(try string) (catalog.Policy, error) {
	p := catalog.Policy{Hourly: f.hourly, Daily: f.daily, Weekly: f.weekly, Monthly: f.monthly}
	for name, v := range map[string]int{"--keep-hourly": f.hourly, "--keep-daily": f.daily, "--keep-weekly": f.weekly, "--keep-monthly": f.monthly} {
		if v < -1 {
			return p, usagef(try, "%s %d: want a count >= 0, or -1 for all", name, v)
		}
	}
	within, err := config.ParseDuration(f.within)
	if err != nil || within < 0 {
		return p, usagef(try, "--keep-within: bad duration %q (use 48h or 7d)", f.within)
	}
	pitr, err := config.ParseDuration(f.pitr)
	if err != nil || pitr < 0 {
		return p, usagef(try, "--keep-pitr: bad duration %q (use 168h or 7d)", f.pitr)
	}
	p.Within, p.PITR = within.D(), pitr.D()
	return p, nil
}

type pruneOpts struct {
	repo   string
	name   string
	keep   policyFlags
	dryRun bool
	json   bool
	// uploadAge: incomplete multipart uploads started longer ago than
	// this are abandoned (reported, and aborted unless dryRun).
	uploadAge string
	now       func() time.Time // tests
}

const pruneTry = "redback prune --repo file:///var/lib/redback/cache-a --dry-run"

func newPruneCmd(e *env) *cobra.Command {
	o := &pruneOpts{}
	c := &cobra.Command{
		Use:   "prune --repo URL [--name NAME] [--keep-hourly N ...] [--dry-run]",
		Short: "Delete snapshots that the retention policy no longer keeps",
		Long: `Apply a GFS retention policy to the snapshots of a repository, by their
recorded end time (UTC buckets; not object names). Never deleted: snapshots
marked with 'redback keep', the newest verified snapshot (and unverified ones
newer than it), snapshots pinned by a running restore or drill, and
everything a log generation that stays needs: its base snapshot and all its
segments. Log generations that stay: the newest, every one not ended (a
shipper may be writing on it), those covering moments inside the
point-in-time window (--keep-pitr), and the last one before a reset (a source
that came back empty). --keep-pitr 0 means no window beyond the newest
generation, never "delete what a shipper writes on". Any other generation is
deleted with all its segments; its base goes too unless another rule keeps it
as a plain snapshot (the output says which). With no verified snapshot no
snapshot is deleted.

Each snapshot goes manifest first, then data, so a crash halfway never leaves
anything that looks valid. A failed delete is reported and makes the exit
code 1. prune works on one source of the repository (--name; it may be
omitted when the repository holds one) and never reads or deletes another
source's objects; --dry-run without --name shows every source, one after the
other (with --json, one JSON object per source). prune takes the source's
lease: it refuses to run while an agent, ship or snapshot writes to that
source (the agent prunes after each snapshot itself).

A Redis Cluster's backup sets are kept or dropped whole: --name CLUSTER
applies the counts to the sets (the newest verified set always stays, so a
set goes only when a newer verified one covers it), removes the dropped
sets' manifests, then prunes each shard source keeping the snapshots of the
sets that stay and what its log needs (see docs/cluster.md). A shard of a
cluster with sets is not pruned alone.`,
		Example: `  redback prune --repo file:///var/lib/redback/cache-a --dry-run
  redback prune --repo s3://bucket/redis --keep-hourly 48 --keep-daily 14 --keep-monthly 12 --json`,
		Args: exactArgs(0, pruneTry),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPrune(cmd.Context(), e, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.repo, "repo", "", "repository URL")
	addNameFlag(f, &o.name, false)
	o.keep.addFlags(f)
	f.BoolVar(&o.dryRun, "dry-run", false, "print what would be deleted and why each kept snapshot stays; change nothing")
	f.BoolVar(&o.json, "json", false, "print the decisions as JSON")
	f.StringVar(&o.uploadAge, "uploads-older-than", "24h", "abort incomplete multipart uploads (S3) started longer ago than this (an upload in flight is younger), and remove a folder repository's staging files (.redback-tmp-*, left by a killed writer) last written longer ago than this (at least 1h)")
	return c
}

func runPrune(ctx context.Context, e *env, o *pruneOpts) error {
	policy, err := o.keep.policy(pruneTry)
	if err != nil {
		return err
	}
	uploadAge, err := config.ParseDuration(o.uploadAge)
	if err != nil || uploadAge <= 0 {
		return usagef(pruneTry, "--uploads-older-than: bad duration %q (use 24h or 7d)", o.uploadAge)
	}
	clusters, err := o.clusters(ctx, e)
	if err != nil {
		return err
	}
	if o.name != "" {
		if clusters.sets[o.name] {
			return pruneCluster(ctx, e, o, policy, uploadAge.D(), o.name)
		}
		if cl := clusters.of(o.name); cl != "" {
			return usagef("redback prune --repo "+o.repo+" --name "+cl, "%s is a shard of cluster %s, whose backup sets are kept or dropped whole: prune the cluster (--name %s)", o.name, cl, cl)
		}
	}
	set, err := openSources(ctx, e, o.repo, o.name, pruneTry)
	if err != nil {
		return err
	}
	defer set.Close()
	if o.name == "" && len(clusters.sets) == 1 {
		// Every source a shard of the one cluster: prune the cluster.
		for cl := range clusters.sets {
			only := true
			for _, src := range set.sources {
				only = only && clusters.of(src.Name) == cl
			}
			if only {
				return pruneCluster(ctx, e, o, policy, uploadAge.D(), cl)
			}
		}
	}
	if len(set.sources) > 1 && !o.dryRun {
		names := set.repo.Names()
		return usagef(tryWithName("redback prune --repo "+o.repo, names), "%s holds %d sources (%s): prune one at a time with --name (or see them all with --dry-run)",
			set.base.Location(), len(names), namesText(names))
	}
	var errs []error
	for i, src := range set.sources {
		if clusters.of(src.Name) != "" {
			continue // with its cluster, below
		}
		if len(set.sources) > 1 && !o.json {
			if i > 0 {
				fmt.Fprintln(e.Out)
			}
			fmt.Fprintf(e.Out, "== source %s ==\n", src.Name)
		}
		if err := prune(ctx, e, o, policy, uploadAge.D(), set.view(src), src.Name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, cl := range clusters.names() {
		if !o.json {
			fmt.Fprintf(e.Out, "\n== cluster %s ==\n", cl)
		}
		if err := pruneCluster(ctx, e, o, policy, uploadAge.D(), cl); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pruneClusters are the clusters a repository holds backup sets of.
type pruneClusters struct{ sets map[string]bool }

// clusters lists the clusters with backup sets in --repo.
func (o *pruneOpts) clusters(ctx context.Context, e *env) (pruneClusters, error) {
	c := pruneClusters{sets: map[string]bool{}}
	b, err := openRepo(ctx, e, o.repo)
	if err != nil {
		return c, err
	}
	defer b.Close()
	sets, _, err := catalog.ListSets(ctx, b, "")
	for _, s := range sets {
		c.sets[s.Cluster] = true
	}
	return c, err
}

// of is the cluster source is a shard of ("" when none with sets).
func (c pruneClusters) of(source string) string {
	for cl := range c.sets {
		if strings.HasPrefix(source, cl+"-shard-") {
			return cl
		}
	}
	return ""
}

func (c pruneClusters) names() []string {
	out := make([]string, 0, len(c.sets))
	for cl := range c.sets {
		out = append(out, cl)
	}
	sort.Strings(out)
	return out
}

// pruneCluster prunes a cluster's backup sets (kept or dropped whole) and
// its shards' sources (ops.PruneCluster) and prints the outcome.
func pruneCluster(ctx context.Context, e *env, o *pruneOpts, policy catalog.Policy, uploadAge time.Duration, cluster string) error {
	base, err := openRepo(ctx, e, o.repo)
	if err != nil {
		return err
	}
	defer base.Close()
	now := time.Now
	if o.now != nil {
		now = o.now
	}
	at := now()
	res, perr := ops.PruneCluster(ctx, base, cluster, ops.LeasedShards(base, nil, e.log),
		ops.PruneParams{Policy: policy, Now: at, UploadsBefore: at.Add(-uploadAge), TempsBefore: at.Add(-max(uploadAge, ops.TempFloor)), DryRun: o.dryRun}, nil)
	if res == nil {
		return perr
	}
	if o.json {
		out := struct {
			Repo   string `json:"repo"`
			DryRun bool   `json:"dry_run"`
			*ops.ClusterPruneOutcome
			Errors []string `json:"errors"`
		}{Repo: base.Location(), DryRun: o.dryRun, ClusterPruneOutcome: res, Errors: []string{}}
		if perr != nil {
			out.Errors = strings.Split(perr.Error(), "\n")
		}
		enc := json.NewEncoder(e.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		del := "delete"
		if o.dryRun {
			del = "would delete"
		}
		deleted := map[string]bool{}
		for _, id := range res.DeletedSets {
			deleted[id] = true
		}
		tw := tabwriter.NewWriter(e.Out, 2, 4, 2, ' ', 0)
		for _, d := range res.Sets {
			action := "keep"
			switch {
			case deleted[d.ID]:
				action = del
			case !d.Keep:
				action = "not deleted"
			}
			fmt.Fprintf(tw, "%s\tset %s\t%s\t%s\n", action, d.ID, d.EndTime.UTC().Format(time.DateTime), strings.Join(d.Reasons, "; "))
		}
		tw.Flush()
		fmt.Fprintf(e.Out, "%d backup set(s) of cluster %s: %s %d, keeping %d (a set is kept or dropped whole)\n", len(res.Sets), cluster, del, len(res.DeletedSets), len(res.Sets)-len(res.DeletedSets))
		shards := make([]string, 0, len(res.Shards))
		for src := range res.Shards {
			shards = append(shards, src)
		}
		sort.Strings(shards)
		for _, src := range shards {
			fmt.Fprintf(e.Out, "-- shard %s --\n", src)
			printPrune(e, o.dryRun, res.Shards[src].PruneResult)
		}
	}
	if perr != nil {
		return fmt.Errorf("prune of cluster %s: %w", cluster, perr)
	}
	return nil
}

// prune runs retention on the source whose objects are repo and prints
// the outcome.
func prune(ctx context.Context, e *env, o *pruneOpts, policy catalog.Policy, uploadAge time.Duration, repo storage.Backend, name string) error {
	now := time.Now
	if o.now != nil {
		now = o.now
	}
	at := now()
	res, perr := ops.Prune(ctx, e.log, repo, name, ops.PruneParams{Policy: policy, Now: at, UploadsBefore: at.Add(-uploadAge), TempsBefore: at.Add(-max(uploadAge, ops.TempFloor)), DryRun: o.dryRun})
	if res == nil {
		return perr
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.Err, "warning: %s\n", w)
	}
	for _, u := range res.Unreadable {
		fmt.Fprintf(e.Err, "warning: skipped an unreadable manifest (neither counted nor deleted): %s\n", u)
	}
	if o.json {
		out := struct {
			Repo       string `json:"repo"`
			SourceName string `json:"source_name"`
			DryRun     bool   `json:"dry_run"`
			*ops.PruneOutcome
			Errors []string `json:"errors"`
		}{Repo: repo.Location(), SourceName: name, DryRun: o.dryRun, PruneOutcome: res, Errors: []string{}}
		if out.AbandonedUploads == nil {
			out.AbandonedUploads = []ops.AbandonedUpload{}
		}
		if out.AbandonedTempFiles == nil {
			out.AbandonedTempFiles = []ops.AbandonedUpload{}
		}
		if perr != nil {
			out.Errors = strings.Split(perr.Error(), "\n")
		}
		if out.Deleted == nil {
			out.Deleted = []string{}
		}
		enc := json.NewEncoder(e.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printPrune(e, o.dryRun, res.PruneResult)
		printLeftovers(e, o.dryRun, leftoverUpload, res.AbandonedUploads, at)
		printLeftovers(e, o.dryRun, leftoverTemp, res.AbandonedTempFiles, at)
	}
	if perr != nil {
		return fmt.Errorf("prune: %d delete(s) failed: %w", res.Failures, perr)
	}
	// A manifest that cannot be read was neither counted nor deleted (the
	// rest of the plan is safe without it), but it is not a success.
	if len(res.UnreadableErrs) > 0 {
		err := fmt.Errorf("prune: %d manifest(s) could not be read (see redback verify): %w", len(res.UnreadableErrs), errors.Join(res.UnreadableErrs...))
		for _, u := range res.UnreadableErrs {
			if pack.VerificationFailed(u) {
				return &VerifyError{Err: err}
			}
		}
		return err
	}
	return nil
}

func printPrune(e *env, dryRun bool, res *catalog.PruneResult) {
	del := "delete"
	if dryRun {
		del = "would delete"
	}
	deleted := map[string]bool{}
	for _, id := range res.Deleted {
		deleted[id] = true
	}
	tw := tabwriter.NewWriter(e.Out, 2, 4, 2, ' ', 0)
	for _, d := range res.Decisions {
		action := "keep"
		reasons := strings.Join(d.Reasons, "; ")
		switch {
		case deleted[d.ID]:
			action = del
		case !res.Locked[d.ID].IsZero():
			action = "locked"
			reasons += "; retention lock (S3 Object Lock) until " + res.Locked[d.ID].UTC().Format(time.DateTime) + ", deletable after it"
		case !d.Keep:
			action = "not deleted"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", action, d.ID, d.EndTime.UTC().Format(time.DateTime), reasons)
	}
	tw.Flush()
	verb := "deleted"
	if dryRun {
		verb = "would delete"
	}
	fmt.Fprintf(e.Out, "%d snapshot(s): %s %d (%s), keeping %d (%s)\n", len(res.Decisions), verb, len(res.Deleted),
		humanBytes(res.FreedBytes), len(res.Decisions)-len(res.Deleted), humanBytes(res.KeptBytes))
	if len(res.ExpiredPins) > 0 {
		fmt.Fprintf(e.Out, "removed %d expired pin(s)\n", len(res.ExpiredPins))
	}
	for _, g := range res.DeletedGenerations {
		fmt.Fprintf(e.Out, "%s log generation %s with all its segments: %s\n", verb, g, res.DeletedGenerationReasons[g])
	}
	kept := make([]string, 0, len(res.KeptGenerations))
	for g := range res.KeptGenerations {
		kept = append(kept, g)
	}
	sort.Strings(kept)
	for _, g := range kept {
		why := res.KeptGenerations[g]
		if until := res.Locked[g]; !until.IsZero() {
			why += " until " + until.UTC().Format(time.DateTime) + ", deletable after it"
		}
		fmt.Fprintf(e.Out, "keep log generation %s: %s\n", g, why)
		if off, ok := res.TrimmedLogs[g]; ok {
			fmt.Fprintf(e.Out, "  %s its log before offset %d (a snapshot synthesized from the log holds that state; the pitr window starts after it)\n", del, off)
		}
	}
	if res.TrimmedSegments > 0 {
		fmt.Fprintf(e.Out, "%s %d log segment(s) before log anchors\n", verb, res.TrimmedSegments)
	}
}

// leftover is how prune words one kind of abandoned write: what it does,
// has done or failed to do, and what the thing is.
type leftover struct {
	would, did, failed string
	what, when, why    string
}

var (
	leftoverUpload = leftover{"would abort", "aborted", "failed to abort",
		"an abandoned multipart upload of", "started", "its parts are stored but never visible"}
	leftoverTemp = leftover{"would remove", "removed", "failed to remove",
		"an abandoned staging file", "last written", "a writer killed mid-write left it"}
)

func printLeftovers(e *env, dryRun bool, kind leftover, found []ops.AbandonedUpload, now time.Time) {
	for _, u := range found {
		action := kind.would
		switch {
		case u.Aborted:
			action = kind.did
		case !dryRun:
			action = kind.failed
		}
		fmt.Fprintf(e.Out, "%s %s %s (%s %s, %s ago; %s)\n", action, kind.what, u.Key,
			kind.when, u.Initiated.UTC().Format(time.DateTime), now.Sub(u.Initiated).Round(time.Second), kind.why)
	}
}
