package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"redback/internal/catalog"
	"redback/internal/clusterset"
	"redback/internal/drill"
	"redback/internal/pack"
	"redback/internal/progress"
)

type drillOpts struct {
	repo         string
	name         string
	at           string
	latestPoint  bool
	snapshot     string
	redisServer  string
	rtoObjective time.Duration
	report       string
	identity     string
	sampleKeys   int
	scratchDir   string
	json         bool
}

func newDrillCmd(e *env) *cobra.Command {
	o := &drillOpts{}
	c := &cobra.Command{
		Use:   "drill --repo URL [--name NAME] [--snapshot ID | --at TIME]",
		Short: "Restore a snapshot into a scratch redis-server and prove it is complete",
		Long: `Run a recovery drill: fetch a snapshot, restore it through the same code
path a real recovery to a directory uses (decrypt, decompress, verify, write
dump.rdb), start a scratch redis-server on a free 127.0.0.1 port in a temp
dir, and prove the data: key count per db equals the manifest's census,
DEBUG DIGEST equals the manifest's digest, a sample of keys chosen by hash
equals the backup value by value with the same expire time, and the
function libraries are present. Each phase is timed. The RTO (from the
start until the scratch server serves the restored data, verified on the
way: fetch + restore + load, as in a real recovery) is checked against
--rto-objective; the proof checks after it are timed separately. The RPO
(age of the snapshot) is reported.

The scratch server is a replica of an unreachable loopback address, so it
keeps keys whose TTL passed since the snapshot and the digest comparison is
exact. It never connects to any other server, and it is killed and its
files removed when the drill ends, fails or is interrupted.

Without --snapshot or --at the newest verified snapshot is drilled.

--at TIME drills a point in time. When a log generation (redback ship)
covers TIME, the point is restored twice: as a multi-part AOF dir (base
snapshot + log up to TIME) that a scratch redis-server loads with
--appendonly yes (the RTO ends when it serves), and through redback's own
replay (restore --to-redis) into a second scratch server. There is no
recorded digest for an arbitrary point, so the proof is that both agree:
key count per db, DEBUG DIGEST, a sample of keys (value and expire time)
and function libraries. A TIME at or after the newest durable point drills
that point, and the RPO is the time since it. A gap in the log before TIME
or a damaged segment fails the drill (exit 3). When no generation covers
TIME, the drill falls back to the newest verified snapshot that ended at or
before TIME and says so in a note; with none either, it is an error.

Exit status: 0 every check passed, 3 a check failed (damaged object, digest
mismatch, missing key, RTO objective missed), 1 the drill could not run (no
redis-server, repository unreachable), 2 usage.`,
		Example: `  redback drill --repo file:///var/lib/redback/cache-a --rto-objective 5m --report drill.md
  redback drill --repo s3://bucket/redis --at 2026-11-25T14:00:00Z --identity key.txt --json`,
		Args: exactArgs(0, "redback drill --repo file:///backups/redis"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDrill(cmd.Context(), e, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.repo, "repo", "", "repository URL")
	addNameFlag(f, &o.name, false)
	f.StringVar(&o.snapshot, "snapshot", "", "snapshot id to drill (default: the newest verified)")
	f.StringVar(&o.at, "at", "", "drill the point in time `TIME` from the log, else the newest snapshot at or before it: "+pointFormatsHelp)
	f.BoolVar(&o.latestPoint, "latest-point", false, "drill the newest durable point of the log (same as --at latest)")
	f.StringVar(&o.redisServer, "redis-server", "", "server binary for the scratch server (default: the redis-server or valkey-server on PATH, versioned names too, that loads the snapshot's RDB version)")
	f.DurationVar(&o.rtoObjective, "rto-objective", 0, "recovery time objective, e.g. 5m; missing it fails the drill")
	f.StringVar(&o.report, "report", "", "write a Markdown report to FILE")
	f.StringVar(&o.identity, "identity", "", "age identity file to decrypt the snapshot (or $REDBACK_IDENTITY_FILE)")
	f.IntVar(&o.sampleKeys, "sample-keys", drill.DefaultSampleKeys, "keys compared value by value (chosen by hash)")
	f.StringVar(&o.scratchDir, "scratch-dir", "", "where the scratch server's temp dir is made (default: $TMPDIR)")
	f.BoolVar(&o.json, "json", false, "print the report as JSON")
	return c
}

// drillOutput is the --json shape: the report plus the reason the drill
// could not run, if so.
type drillOutput struct {
	*drill.Report
	Error string `json:"error,omitempty"`
}

func runDrill(ctx context.Context, e *env, o *drillOpts) error {
	const try = "redback drill --repo file:///backups/redis --rto-objective 5m"
	if o.at != "" && o.snapshot != "" {
		return usagef(try, "give --snapshot or --at, not both")
	}
	if o.latestPoint && o.at != "" {
		return usagef(try, "give --at or --latest-point, not both")
	}
	if o.latestPoint && o.snapshot != "" {
		return usagef(try, "give --snapshot or --latest-point, not both")
	}
	var at time.Time
	latest := o.latestPoint || isLatest(o.at)
	if o.at != "" && !latest {
		t, err := parseTime("at", o.at)
		if err != nil {
			return err
		}
		at = t
	}
	if o.rtoObjective < 0 {
		return usagef(try, "--rto-objective must not be negative")
	}
	idents, err := loadIdentities(e, o.identity, "redback drill --repo URL --identity key.txt")
	if err != nil {
		return err
	}
	if done, err := runSetDrill(ctx, e, o, idents, at.IsZero() && !latest); done {
		return err
	}
	repo, err := openSource(ctx, e, o.repo, o.name, "redback drill --repo "+o.repo)
	if err != nil {
		return err
	}
	defer repo.Close()
	var snap *catalog.Snapshot
	if at.IsZero() && !latest {
		snap, err = drill.Select(ctx, repo, o.snapshot, at)
		if err != nil && pack.VerificationFailed(err) && !o.json {
			fmt.Fprintf(e.Out, "  ✗ %-9s %v\ndrill FAILED: 1 of 1 checks failed\n", drill.CheckRestore, err)
			return &silentError{code: ExitVerify}
		}
		if err != nil {
			return err
		}
		if snap.Object.Encryption != "" && len(idents) == 0 {
			return usagef("redback drill --repo "+o.repo+" --identity key.txt", "snapshot %s is encrypted: give --identity FILE (or $REDBACK_IDENTITY_FILE)", snap.ID)
		}
		if !o.json {
			fmt.Fprintf(e.Out, "drill: snapshot %s (ended %s, %d keys, %s stored)\n", snap.ID,
				snap.EndTime.Local().Format(time.DateTime), snap.Census.Keys, humanBytes(snap.Object.StoredBytes))
		}
	} else if !o.json && latest {
		fmt.Fprintln(e.Out, "drill: the newest durable point")
	} else if !o.json {
		fmt.Fprintf(e.Out, "drill: the state at %s\n", at.Local().Format("2006-01-02 15:04:05.000"))
	}
	show := !o.json && progress.IsTerminal(e.Err)
	rep, runErr := drill.Run(ctx, drill.Options{
		Backend:      repo,
		Snapshot:     snap,
		At:           at,
		Latest:       latest,
		RedisServer:  o.redisServer,
		Identities:   idents,
		RTOObjective: o.rtoObjective,
		SampleKeys:   sampleKeysOpt(o.sampleKeys),
		ScratchDir:   o.scratchDir,
		OnPhase: func(phase string) {
			if show {
				fmt.Fprintf(e.Err, "drill: %s...\n", phase)
			}
		},
		NewBar: func(phase string, total int64) *progress.Bar {
			return progress.New(e.Err, phase, total, show)
		},
	})
	if rep != nil && o.report != "" {
		var md bytes.Buffer
		_ = rep.Markdown(&md)
		if runErr != nil {
			fmt.Fprintf(&md, "\n## The drill could not complete\n\n%s\n", runErr)
		}
		if err := os.WriteFile(o.report, md.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write report %s: %w", o.report, err)
		}
	}
	if o.json && rep != nil {
		out := drillOutput{Report: rep}
		if runErr != nil {
			out.Error = runErr.Error()
		}
		if err := printJSON(e, out); err != nil {
			return err
		}
	} else if rep != nil {
		printDrill(e, rep)
	}
	if runErr != nil {
		return fmt.Errorf("drill: %w", runErr)
	}
	if !rep.OK {
		return &silentError{code: ExitVerify}
	}
	return nil
}

func sampleKeysOpt(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

func printDrill(e *env, r *drill.Report) {
	if p := r.Point; p != nil && p.Kind == drill.PointPITR && p.Generation != "" {
		fmt.Fprintf(e.Out, "  point: generation %s, offset %d, last command received %s (base snapshot %s)\n",
			p.Generation, p.Offset, p.Time.Local().Format("2006-01-02 15:04:05.000"), r.Snapshot)
	} else if p != nil && !p.Requested.IsZero() && r.Snapshot != "" {
		fmt.Fprintf(e.Out, "  point: snapshot %s (ended %s)\n", r.Snapshot, r.SnapshotTime.Local().Format(time.DateTime))
	}
	for _, c := range r.Checks {
		mark := "✓"
		if !c.OK {
			mark = "✗"
		}
		fmt.Fprintf(e.Out, "  %s %-9s %s\n", mark, c.Name, c.Detail)
	}
	names := make([]string, 0, len(r.Phases))
	for n := range r.Phases {
		names = append(names, n)
	}
	order := map[string]int{drill.PhaseFetch: 0, drill.PhaseRestore: 1, drill.PhaseLoad: 2, drill.PhaseReplay: 3, drill.PhaseChecks: 4}
	sort.Slice(names, func(i, j int) bool { return order[names[i]] < order[names[j]] })
	var ph []string
	for _, n := range names {
		ph = append(ph, fmt.Sprintf("%s %.3fs", n, r.Phases[n]))
	}
	if len(ph) > 0 {
		fmt.Fprintf(e.Out, "  phases: %s\n", strings.Join(ph, ", "))
	}
	rto := fmt.Sprintf("RTO %.3fs", r.RTOSeconds)
	if r.RTOObjectiveSeconds > 0 {
		met := "met"
		if !r.RTOMet {
			met = "MISSED"
		}
		rto += fmt.Sprintf(" (objective %s: %s)", time.Duration(r.RTOObjectiveSeconds*float64(time.Second)), met)
	}
	fmt.Fprintf(e.Out, "  %s, RPO %s, drill total %.3fs\n", rto, time.Duration(r.RPOSeconds*float64(time.Second)).Round(time.Millisecond), r.TotalSeconds)
	for _, n := range r.Notes {
		fmt.Fprintf(e.Out, "  note: %s\n", n)
	}
	switch {
	case r.OK:
		fmt.Fprintf(e.Out, "drill PASSED: %d keys restored and verified\n", r.Keys)
	case len(r.Checks) > 0 && len(r.Failed()) > 0:
		fmt.Fprintf(e.Out, "drill FAILED: %d of %d checks failed\n", len(r.Failed()), len(r.Checks))
	}
}

// runSetDrill drills a backup set when --snapshot names one or --name a
// cluster with sets (its newest; --at does not apply); done is false when
// the drill is of a single source.
func runSetDrill(ctx context.Context, e *env, o *drillOpts, ids []age.Identity, snapshotDrill bool) (done bool, err error) {
	if o.repo == "" || (o.snapshot == "" && o.name == "") {
		return false, nil
	}
	base, err := openRepo(ctx, e, o.repo)
	if err != nil {
		return true, err
	}
	defer base.Close()
	sets, _, err := catalog.ListSets(ctx, base, "")
	if err != nil || len(sets) == 0 {
		return err != nil, err
	}
	var set *catalog.Set
	for _, s := range sets { // newest first
		if (o.snapshot != "" && s.ID == o.snapshot) || (o.snapshot == "" && s.Cluster == o.name) {
			set = s
			break
		}
	}
	if set == nil {
		return false, nil
	}
	if !snapshotDrill {
		return true, usagef("redback drill --repo "+o.repo+" --name "+set.Cluster, "--at and --latest-point do not apply to a backup set yet (drill the set, or one shard with --name %s-shard-N)", set.Cluster)
	}
	rep, err := clusterset.DrillSet(ctx, base, set, clusterset.DrillOptions{Identities: ids, RedisServer: o.redisServer,
		TempDir: o.scratchDir, RTOObjective: o.rtoObjective})
	if err != nil {
		return true, err
	}
	if o.json {
		enc := json.NewEncoder(e.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return true, err
		}
	} else {
		for _, sh := range rep.Shards {
			mark := "✓"
			if !sh.OK {
				mark = "✗"
			}
			fmt.Fprintf(e.Out, "  %s shard %s: restored digest %s (snapshot %s)\n", mark, sh.Source, sh.Got, sh.Want)
		}
		verdict := "PASSED"
		if !rep.OK {
			verdict = "FAILED: " + rep.Detail
		}
		fmt.Fprintf(e.Out, "drill of set %s (cluster %s, %d shards): union digest %s (set %s), RTO %.1fs: %s\n",
			set.ID, set.Cluster, len(rep.Shards), rep.Union, set.Digest, rep.RTOSeconds, verdict)
	}
	if !rep.OK {
		return true, &silentError{code: ExitVerify}
	}
	return true, nil
}
