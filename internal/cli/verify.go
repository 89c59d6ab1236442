package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"redback/internal/catalog"
	"redback/internal/clusterset"
	"redback/internal/progress"
	"redback/internal/storage"
	"redback/internal/verify"
)

type verifyOpts struct {
	repo     string
	name     string
	all      bool
	sample   float64
	identity string
	parallel int
	json     bool
}

func newVerifyCmd(e *env) *cobra.Command {
	o := &verifyOpts{}
	c := &cobra.Command{
		Use:   "verify --repo URL [--name NAME] [ID ...|--all]",
		Short: "Re-read snapshots and check them end to end; report every problem",
		Long: `Re-read snapshots from the repository and check each one end to end: the
manifest is readable and sane, the data object exists, its stored size and
sha256 match the manifest, it decrypts and decompresses, the RDB parses
completely with the recorded CRC-64 status, and the key census and the
DEBUG DIGEST recomputed from the data equal the manifest's. Every problem is
reported; verify never stops at the first one. Data objects without a
manifest (left by an interrupted write) are listed as info, not damage.

Without IDs (or with --all) every snapshot is checked. --sample P checks P
percent of them, chosen by hashing their ids: the same ones on every run.
A repository of several sources is checked source by source unless --name
chooses one; a location that holds no repository is an error (exit 1).
Without --name and IDs, the backup sets of clusters are checked too: each
shard's snapshot exists, is verified and has the digest the set recorded,
the shards cover every slot once, and their union digest is the set's.

Exit status: 0 all good, 3 something is damaged or missing, 1 the
repository could not be read, 2 usage (also: encrypted snapshots and no
--identity).`,
		Example: `  redback verify --repo file:///var/lib/redback/cache-a
  redback verify --repo s3://bucket/redis --sample 10 --identity ~/.config/redback/key.txt --json
  redback verify --repo /backups/redis 20261125T140312.123Z-a1b2c3`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), e, o, args)
		},
	}
	f := c.Flags()
	f.StringVar(&o.repo, "repo", "", "repository URL")
	addNameFlag(f, &o.name, false)
	f.BoolVar(&o.all, "all", false, "check every snapshot (the default without IDs)")
	f.Float64Var(&o.sample, "sample", 0, "check only this percentage of the snapshots (0 < P <= 100), chosen by hashing their ids")
	f.StringVar(&o.identity, "identity", "", "age identity file to decrypt encrypted snapshots (or $REDBACK_IDENTITY_FILE)")
	f.IntVar(&o.parallel, "parallel", 0, "snapshots checked at once (0: one per 4 CPUs, at least 1, at most the backend's connections; each check uses several cores itself)")
	f.BoolVar(&o.json, "json", false, "print JSON: {ok, checked, findings}")
	return c
}

// verifyOutput is the --json shape of `redback verify`.
type verifyOutput struct {
	OK        bool              `json:"ok"`
	Repo      string            `json:"repo"`
	Snapshots int               `json:"snapshots"`
	Checked   int               `json:"checked"`
	ByKind    map[string]int    `json:"checked_by_kind"`
	Findings  []verify.Finding  `json:"findings"`
	Items     []verifyItemState `json:"items"`
}

type verifyItemState struct {
	SourceName string  `json:"source_name"`
	Kind       string  `json:"kind"`
	ID         string  `json:"id"`
	Object     string  `json:"object"`
	OK         bool    `json:"ok"`
	Keys       int64   `json:"keys"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	Findings   int     `json:"findings"`
}

func runVerify(ctx context.Context, e *env, o *verifyOpts, ids []string) error {
	const try = "redback verify --repo file:///backups/redis --all"
	if o.all && len(ids) > 0 {
		return usagef(try, "give snapshot IDs or --all, not both")
	}
	if o.sample < 0 || o.sample > 100 {
		return usagef("redback verify --repo file:///backups/redis --sample 10", "--sample must be a percentage in (0, 100], not %g", o.sample)
	}
	if o.parallel < 0 {
		return usagef(try, "--parallel must be >= 0")
	}
	idents, err := loadIdentities(e, o.identity, "redback verify --repo URL --identity key.txt")
	if err != nil {
		return err
	}
	set, err := openSources(ctx, e, o.repo, o.name, "redback verify --repo "+o.repo)
	if err != nil {
		return err
	}
	defer set.Close()
	if len(ids) > 0 && len(set.sources) > 1 {
		return usagef(tryWithName("redback verify --repo "+o.repo+" "+strings.Join(ids, " "), set.repo.Names()),
			"snapshot IDs belong to one source: choose it with --name (sources: %s)", namesText(set.repo.Names()))
	}

	bar := progress.New(e.Err, "verify", -1, !o.json && progress.IsTerminal(e.Err))
	out := verifyOutput{Repo: set.base.Location(), Items: []verifyItemState{}}
	source := ""
	opts := verify.Options{
		IDs:           ids,
		SamplePercent: o.sample,
		Identities:    idents,
		Parallel:      o.parallel,
		Progress:      func(n int64) { bar.Add(n, 0) },
		Checkers:      []verify.Checker{verify.Segments{}},
		OnItem: func(it verify.Item) {
			bar.Add(0, it.Keys)
			st := verifyItemState{SourceName: source, Kind: it.Kind, ID: it.ID, Object: it.Object, OK: it.OK(), Keys: it.Keys,
				Bytes: it.Bytes, Seconds: it.Duration.Seconds(), Findings: len(it.Findings)}
			out.Items = append(out.Items, st)
			if o.json {
				return
			}
			bar.Done()
			status := "ok"
			if !st.OK {
				// UNCHECKED only when nothing found is damage: a read
				// failure next to damage is still DAMAGED.
				status = "UNCHECKED"
				if (&verify.Summary{Findings: it.Findings}).Damaged() {
					status = "DAMAGED"
				}
			}
			fmt.Fprintf(e.Out, "%-9s %s %s  %d keys  %s  %s\n", status, it.Kind, it.ID, it.Keys, humanBytes(it.Bytes),
				it.Duration.Round(time.Millisecond))
			for _, f := range it.Findings {
				fmt.Fprintf(e.Out, "          %s: %s: %s\n", f.Severity, f.Object, f.Message)
			}
		},
	}
	sum := &verify.Summary{Findings: []verify.Finding{}, ByKind: map[string]int{}}
	for i, src := range set.sources {
		source = src.Name
		if len(set.sources) > 1 && !o.json {
			bar.Done()
			if i > 0 {
				fmt.Fprintln(e.Out)
			}
			fmt.Fprintf(e.Out, "== source %s ==\n", src.Name)
		}
		one, err := verify.Run(ctx, set.view(src), opts)
		bar.Done()
		if err != nil {
			if len(set.sources) > 1 {
				err = fmt.Errorf("source %s: %w", src.Name, err)
			}
			return err
		}
		sum.Add(one)
	}
	if o.name == "" && len(ids) == 0 {
		if err := verifySets(ctx, e, set.base, sum, o.json); err != nil {
			return err
		}
	}
	if len(ids) == 0 {
		noteTemps(ctx, set.base, sum)
	}
	out.OK, out.Snapshots, out.Checked, out.ByKind, out.Findings = sum.OK(), sum.Snapshots, sum.Checked, sum.ByKind, sum.Findings
	if o.json {
		if err := printJSON(e, out); err != nil {
			return err
		}
	} else {
		var errs, warns, infos int
		for _, f := range sum.Findings {
			switch f.Severity {
			case verify.Error:
				errs++
			case verify.Warning:
				warns++
			default:
				infos++
				if f.Code == verify.CodeOrphan || f.Code == verify.CodeTempFile {
					fmt.Fprintf(e.Out, "info      %s: %s\n", f.Object, f.Message)
				}
			}
		}
		bad := 0
		for _, it := range out.Items {
			if !it.OK {
				bad++
			}
		}
		verdict := "all good"
		if !sum.OK() {
			verdict = "PROBLEMS FOUND"
		}
		checked := fmt.Sprintf("%d of %d snapshots", sum.ByKind["snapshot"], sum.Snapshots)
		if n := sum.ByKind["segment"]; n > 0 {
			checked += fmt.Sprintf(" and %d log segments", n)
		}
		where := set.base.Location()
		if len(set.sources) > 1 {
			where = fmt.Sprintf("%d sources of %s", len(set.sources), where)
		}
		fmt.Fprintf(e.Out, "verify: %s: checked %s in %s, %d objects with problems; %d errors, %d warnings, %d info\n",
			verdict, checked, where, bad, errs, warns, infos)
	}
	switch {
	case sum.Damaged():
		return &silentError{code: ExitVerify}
	case sum.Has(verify.CodeIO):
		return &silentError{code: ExitFailure}
	case sum.Has(verify.CodeIdentity):
		if o.json {
			return &silentError{code: ExitUsage}
		}
		return usagef("redback verify --repo "+o.repo+" --identity key.txt", "encrypted snapshots could not be checked without a matching identity")
	}
	return nil
}

// verifySets checks every backup set's manifest against its shards'
// snapshots (clusterset.Check) and adds a finding per problem.
func verifySets(ctx context.Context, e *env, base storage.Backend, sum *verify.Summary, quiet bool) error {
	sets, bad, err := catalog.ListSets(ctx, base, "")
	if err != nil {
		return err
	}
	for _, b := range bad {
		sum.Findings = append(sum.Findings, verify.Finding{Object: catalog.SetPrefix, Severity: verify.Error, Code: verify.CodeManifest, Message: b.Error()})
	}
	if len(sets) > 0 && !quiet {
		fmt.Fprintf(e.Out, "\n== backup sets ==\n")
	}
	for _, s := range sets {
		problems, err := clusterset.Check(ctx, base, s)
		if err != nil {
			return fmt.Errorf("set %s: %w", s.ID, err)
		}
		sum.ByKind["set"]++
		key := catalog.SetKey(s.Cluster, s.ID)
		for _, p := range problems {
			sum.Findings = append(sum.Findings, verify.Finding{Snapshot: s.ID, Object: key, Severity: verify.Error, Code: "set", Message: p})
		}
		if quiet {
			continue
		}
		status := "ok"
		if len(problems) > 0 {
			status = "DAMAGED"
		}
		fmt.Fprintf(e.Out, "%-9s set %s of cluster %s  %d shards  %d keys  union digest %s\n", status, s.ID, s.Cluster, len(s.Shards), s.Keys, s.Digest)
		for _, p := range problems {
			fmt.Fprintf(e.Out, "          error: %s: %s\n", key, p)
		}
	}
	return nil
}

// noteTemps adds an info finding per staging file (".redback-tmp-*") a
// writer killed mid-write left in a folder repository: never an object,
// not damage, and `redback prune` removes it once it is old enough.
func noteTemps(ctx context.Context, base storage.Backend, sum *verify.Summary) {
	err := storage.ListTemps(ctx, base, "", func(oi storage.ObjectInfo) error {
		sum.Findings = append(sum.Findings, verify.Finding{Object: oi.Key, Severity: verify.Info, Code: verify.CodeTempFile,
			Message: fmt.Sprintf("a staging file a killed writer left (%d bytes, last written %s); not part of any backup, redback prune removes it once older than --uploads-older-than (24h by default)",
				oi.Size, oi.ModTime.UTC().Format(time.DateTime))})
		return nil
	})
	if err != nil {
		sum.Findings = append(sum.Findings, verify.Finding{Object: base.Location(), Severity: verify.Warning, Code: verify.CodeTempFile,
			Message: fmt.Sprintf("staging files not checked: %v", err)})
	}
}
