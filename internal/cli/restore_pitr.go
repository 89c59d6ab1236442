package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"redback/internal/ops"
	"redback/internal/pitr"
)

// pitrFlags are the point-in-time flags of `redback restore`.
type pitrFlags struct {
	At            string
	LatestPoint   bool
	BeforeCommand string
	After         string
	Key           string
	ToOffset      string
	Generation    string
	Skip          []string
	RedisServer   string
	Uncertain     string
}

func (p *pitrFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&p.At, "at", "", "point in time: the state after the last command received at or before `TIME`: "+pointFormatsHelp)
	fs.BoolVar(&p.LatestPoint, "latest-point", false, "point in time: the newest durable point of the log (same as --at latest)")
	fs.StringVar(&p.BeforeCommand, "before-command", "", "point in time: the state just before the first command `NAME` (FLUSHALL, FLUSHDB, DEL, UNLINK, SWAPDB, ...; see 'redback log')")
	fs.StringVar(&p.After, "after", "", "with --before-command: only commands received at or after `TIME`")
	fs.StringVar(&p.Key, "key", "", "with --before-command: only commands with a key argument matching this Redis glob `PATTERN`")
	fs.StringVar(&p.ToOffset, "to-offset", "", "point in time: the state at replication offset `N` (the last command boundary at or before it)")
	fs.StringVar(&p.Generation, "generation", "", "with a point in time: search only this log generation `ID`")
	fs.StringVar(&p.RedisServer, "redis-server", "", "with a point in time: server binary that rebuilds the point (default: the redis-server or valkey-server on PATH, versioned names too, that loads the base snapshot's RDB version)")
	fs.StringVar(&p.Uncertain, "uncertain", "", "with --at: when the time falls inside an interval where the log only bounds when commands ran (re-sent after a reconnect), restore the state before them (`earliest`) or after them (latest) instead of refusing")
	fs.StringArrayVar(&p.Skip, "skip-command-at", nil, "surgical undo: replay everything except the command at `OFFSET` (see 'redback log'; repeatable); later commands are replayed as they were")
}

// requested reports whether any point-in-time flag was given.
func (p *pitrFlags) requested() bool {
	return p.At != "" || p.LatestPoint || p.BeforeCommand != "" || p.ToOffset != "" || len(p.Skip) > 0 || p.After != "" || p.Key != "" || p.Generation != "" || p.Uncertain != ""
}

// target builds the pitr target from the flags.
func (p *pitrFlags) target() (pitr.Target, error) {
	try := "redback restore --repo URL --at 2026-11-25T14:03:12Z --to-redis redis://127.0.0.1:6379"
	n := 0
	for _, s := range []string{p.At, p.BeforeCommand, p.ToOffset} {
		if s != "" {
			n++
		}
	}
	if p.LatestPoint {
		n++
	}
	if n != 1 {
		return pitr.Target{}, usagef(try, "give exactly one point in time: --at TIME, --at latest (--latest-point), --before-command NAME or --to-offset N (got %d)", n)
	}
	if (p.After != "" || p.Key != "") && p.BeforeCommand == "" {
		return pitr.Target{}, usagef("redback restore --repo URL --before-command DEL --key 'user:*' --after 2026-11-25T14:00:00Z --to-redis URL", "--after and --key go with --before-command")
	}
	switch p.Uncertain {
	case "", pitr.UncertainEarliest, pitr.UncertainLatest:
	default:
		return pitr.Target{}, usagef("redback restore --repo URL --at TIME --uncertain earliest --to-dir DIR", "--uncertain takes earliest or latest, got %q", p.Uncertain)
	}
	if p.Uncertain != "" && p.At == "" {
		return pitr.Target{}, usagef("redback restore --repo URL --at TIME --uncertain earliest --to-dir DIR", "--uncertain goes with --at")
	}
	var t pitr.Target
	switch {
	case p.LatestPoint || isLatest(p.At):
		t = pitr.Latest()
	case p.At != "":
		at, err := parseTime("at", p.At)
		if err != nil {
			return t, err
		}
		t = pitr.AtTime(at)
	case p.BeforeCommand != "":
		m := pitr.CommandMatch{Name: strings.TrimSpace(p.BeforeCommand), KeyPattern: p.Key}
		if strings.ContainsAny(m.Name, " \t") {
			return t, usagef("redback restore --repo URL --before-command FLUSHALL --to-redis URL", "--before-command takes a command name, got %q", p.BeforeCommand)
		}
		if p.After != "" {
			a, err := parseTime("after", p.After)
			if err != nil {
				return t, err
			}
			m.After = a
		}
		t = pitr.BeforeCommand(m)
	default:
		off, err := strconv.ParseInt(p.ToOffset, 10, 64)
		if err != nil || off < 0 {
			return t, usagef("redback restore --repo URL --to-offset 123456 --to-redis URL", "--to-offset %q is not an offset (a non-negative integer)", p.ToOffset)
		}
		t = pitr.AtOffset(off)
	}
	t.Generation = p.Generation
	t.Uncertain = p.Uncertain
	for _, v := range p.Skip {
		off, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || off < 0 {
			return t, usagef("redback restore --repo URL --at TIME --skip-command-at 123456 --to-redis URL", "--skip-command-at %q is not an offset (see the offsets with 'redback log --repo URL')", v)
		}
		t.Skip = append(t.Skip, off)
	}
	return t, nil
}

// pitrJSON is the --json output of a point-in-time restore.
type pitrJSON struct {
	Generation   string         `json:"generation"`
	BaseSnapshot string         `json:"base_snapshot"`
	Target       string         `json:"target"`
	Offset       int64          `json:"offset"`
	Time         time.Time      `json:"time"`
	Match        *pitr.Command  `json:"match,omitempty"`
	Skipped      []pitr.Command `json:"skipped"`
	Notes        []string       `json:"notes"`
	Destination  string         `json:"destination"`
	Result       *pitr.Result   `json:"result"`
	// VerifiedBy, SampleChecked and SampleMismatches say how the target's
	// state at the point (log replay included) was checked, as a snapshot
	// restore's do: "digest" or "sample" against the point rebuilt in a
	// scratch server, "" when it was not (replayed straight into the
	// target: only the base snapshot was checked; Notes say so).
	VerifiedBy       string  `json:"verified_by,omitempty"`
	SampleChecked    int     `json:"sample_checked,omitempty"`
	SampleMismatches int     `json:"sample_mismatches,omitempty"`
	DurationSeconds  float64 `json:"duration_seconds"`
	Error            string  `json:"error,omitempty"`
}

// printPlan prints, before anything is written, what a point-in-time
// restore decided.
func (o *restoreOpts) printPlan(e *env, p *pitr.Plan) {
	for _, s := range p.Skipped {
		fmt.Fprintf(e.Err, "warning: leaving out %s; the commands after it are replayed as they were and may have depended on it\n", s.String())
	}
	if o.json {
		return
	}
	if p.Match != nil {
		fmt.Fprintf(e.Out, "restoring to just before: %s at %s (offset %d, generation %s)\n", pitr.Display(p.Match.Args, 64, 8), fmtWindowTime(p.Match.Time), p.Match.Offset, p.Generation.ID)
	} else {
		fmt.Fprintf(e.Out, "restoring to %s: offset %d, last command received %s (generation %s)\n", p.Target.String(), p.Offset, fmtWindowTime(p.Time), p.Generation.ID)
	}
	fmt.Fprintf(e.Out, "base snapshot %s, then %d log segments\n", p.Base.ID, len(p.Segments))
	for _, n := range p.Notes {
		fmt.Fprintf(e.Err, "note: %s\n", n)
	}
}

// replayUnverified is the note of a point-in-time restore replayed straight
// into a live server (no scratch server to rebuild the point).
const replayUnverified = "the state after the log replay was not verified (the log was replayed straight into the target; only the base snapshot was checked)"

// reportLog prints what a point-in-time restore did.
func (o *restoreOpts) reportLog(e *env, r *ops.RestoreResult, dst ops.Destination, rerr error, took time.Duration) error {
	p, res := r.Decision.Plan, r.Log
	if res == nil {
		res = &pitr.Result{}
	}
	dur := took.Seconds()
	if o.json {
		j := pitrJSON{Generation: p.Generation.ID, BaseSnapshot: p.Base.ID, Target: p.Target.String(), Offset: p.Offset, Time: p.Time,
			Match: p.Match, Skipped: p.Skipped, Notes: p.Notes, Destination: dst.String(), Result: res, DurationSeconds: dur}
		if j.Skipped == nil {
			j.Skipped = []pitr.Command{}
		}
		if res.Base != nil && dst.Redis != nil {
			if r.Rebuilt {
				// The target was restored from the point itself.
				j.VerifiedBy, j.SampleChecked, j.SampleMismatches = res.Base.VerifiedBy, res.Base.SampleChecked, res.Base.SampleMismatches
			} else {
				j.Notes = append(j.Notes[:len(j.Notes):len(j.Notes)], replayUnverified)
			}
		}
		if j.Notes == nil {
			j.Notes = []string{}
		}
		if rerr != nil {
			j.Error = rerr.Error()
		}
		if err := printJSON(e, j); err != nil {
			return err
		}
		if rerr != nil {
			return &silentError{code: ExitCode(rerr)}
		}
		return nil
	}
	for _, fe := range res.FirstErrors {
		fmt.Fprintf(e.Err, "replay error: %s\n", fe)
	}
	if rerr != nil {
		return rerr
	}
	var keys int64
	if res.Base != nil {
		keys = res.Base.KeysRestored
	}
	fmt.Fprintf(e.Out, "restored generation %s to %s: base %d keys, %d commands replayed (%s) in %.1fs\n",
		p.Generation.ID, dst.String(), keys, res.Commands, humanBytes(res.Bytes), dur)
	if res.Base != nil && dst.Redis != nil {
		for _, n := range res.Base.Notes {
			fmt.Fprintf(e.Err, "note: %s\n", n)
		}
		switch {
		case !r.Rebuilt:
			fmt.Fprintf(e.Err, "note: %s\n", replayUnverified)
		case res.Base.VerifiedBy == "sample":
			fmt.Fprintf(e.Out, "verified by sample against the point rebuilt in a scratch server: %d keys read back, %d differ\n", res.Base.SampleChecked, res.Base.SampleMismatches)
		case res.Base.VerifiedBy == "digest":
			fmt.Fprintf(e.Out, "verified: the target's DEBUG DIGEST %s equals the point rebuilt in a scratch server\n", res.Base.Digest)
		}
	}
	if o.toDir != "" {
		// only now: a refused or failed restore prints no instructions
		fmt.Fprintf(e.Err, "note: %s/%s is a multi-part AOF: start the server with --appendonly yes --dir %s\n", o.toDir, pitr.AOFDirName, o.toDir)
	}
	return nil
}
