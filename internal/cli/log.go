package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"redback/internal/catalog"
	"redback/internal/pitr"
)

// logOpts are the flags of `redback log`.
type logOpts struct {
	repo       string
	name       string
	from, to   string
	command    string
	generation string
	identity   string
	json       bool
	maxArg     int
}

func newLogCmd(e *env) *cobra.Command {
	var o logOpts
	c := &cobra.Command{
		Use:   "log --repo URL [--name NAME] [--from TIME] [--to TIME] [--command NAME] [--json]",
		Short: "List the shipped commands with their time, offset, db and generation",
		Long: `Streams the commands of the shipped log, oldest generation first, in
offset order: receive time (ms), replication offset (the offset before the
command, as --to-offset and --skip-command-at take it), db, generation and
the arguments (each cut to --max-arg bytes). SELECT is not listed (the db
is a column); MULTI and EXEC are, and commands inside a transaction are
marked with "tx".

Use it to find the command to restore before:
  redback log --repo URL --command FLUSHALL --from 2026-11-25T14:00:00Z
then
  redback restore --repo URL --before-command FLUSHALL --after 2026-11-25T14:00:00Z --to-redis URL`,
		Example: `  redback log --repo file:///backups/redis --command flushall
  redback log --repo s3://bucket/redis --from 2026-11-25T14:00:00Z --to 1795520462 --json`,
		Args: exactArgs(0, "redback log --repo file:///backups/redis --command FLUSHALL"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLog(cmd.Context(), e, &o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.repo, "repo", "", "repository URL")
	addNameFlag(f, &o.name, false)
	f.StringVar(&o.from, "from", "", "only commands received at or after `TIME`: "+timeFormatsHelp)
	f.StringVar(&o.to, "to", "", "only commands received at or before `TIME`")
	f.StringVar(&o.command, "command", "", "only this command `NAME` (case-insensitive), e.g. FLUSHALL, DEL")
	f.StringVar(&o.generation, "generation", "", "only this generation `ID`")
	f.StringVar(&o.identity, "identity", "", "age identity file for encrypted segments (or $REDBACK_IDENTITY_FILE, $REDBACK_IDENTITY)")
	f.BoolVar(&o.json, "json", false, "print one JSON object per command (JSON Lines)")
	f.IntVar(&o.maxArg, "max-arg", 64, "show at most `BYTES` of each argument")
	return c
}

// logJSON is one line of `redback log --json`.
type logJSON struct {
	Time   time.Time `json:"time"`
	UnixMs int64     `json:"unix_ms"`
	// TimeFrom, when set, says the command ran at a time only known to
	// lie after it and at or before time (see docs/format.md).
	TimeFrom      *time.Time `json:"time_from,omitempty"`
	Offset        int64      `json:"offset"`
	Size          int64      `json:"size"`
	DB            int        `json:"db"`
	Generation    string     `json:"generation"`
	Name          string     `json:"name"`
	Args          []string   `json:"args"` // arguments after the name, each cut to --max-arg bytes
	ArgsTotal     int        `json:"args_total"`
	InTransaction bool       `json:"in_transaction"`
	// Lost: the old primary acknowledged the command and a failover lost
	// it (not in the new primary's data; see docs/sentinel.md).
	Lost bool `json:"lost,omitempty"`
}

func runLog(ctx context.Context, e *env, o *logOpts) error {
	var f pitr.Filter
	var err error
	if o.from != "" {
		if f.From, err = parseTime("from", o.from); err != nil {
			return err
		}
	}
	if o.to != "" {
		if f.To, err = parseTime("to", o.to); err != nil {
			return err
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return usagef("redback log --repo URL --from 2026-11-25T14:00:00Z --to 2026-11-25T15:00:00Z", "--to %s is before --from %s", o.to, o.from)
	}
	if o.maxArg < 1 {
		return usagef("redback log --repo URL --max-arg 64", "--max-arg must be at least 1")
	}
	f.Command, f.Generation = strings.TrimSpace(o.command), o.generation
	ids, err := loadIdentities(e, o.identity, "redback log --repo URL --identity key.txt")
	if err != nil {
		return err
	}
	repo, err := openSource(ctx, e, o.repo, o.name, "redback log --repo "+o.repo)
	if err != nil {
		return err
	}
	defer repo.Close()
	gens, err := catalog.ListGenerations(ctx, repo)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if g.Reset && (f.Generation == "" || f.Generation == g.ID) {
			fmt.Fprintf(e.Err, "note: generation %s is a RESET after generation %s: %s\n", g.ID, g.ResetFrom, g.ResetReason)
		}
	}
	enc := json.NewEncoder(e.Out)
	n := 0
	if !o.json {
		fmt.Fprintln(e.Out, "TIME                      OFFSET        DB  GENERATION                         COMMAND")
	}
	err = pitr.Log(ctx, repo, f, pitr.Options{Identities: ids}, func(c *pitr.Command) error {
		n++
		if o.json {
			j := logJSON{Time: c.Time, UnixMs: c.Time.UnixMilli(), Offset: c.Offset, Size: c.Size, DB: c.DB, Generation: c.Generation,
				Name: c.Name, Args: []string{}, ArgsTotal: len(c.Args) - 1, InTransaction: c.InTransaction, Lost: c.Lost}
			if !c.TimeFrom.IsZero() {
				j.TimeFrom = &c.TimeFrom
			}
			for _, a := range c.Args[1:] {
				if len(a) > o.maxArg {
					a = a[:o.maxArg]
				}
				j.Args = append(j.Args, string(a))
			}
			return enc.Encode(j)
		}
		tx := ""
		if c.InTransaction {
			tx = " tx"
		}
		if !c.TimeFrom.IsZero() {
			tx += "  (ran between " + fmtWindowTime(c.TimeFrom) + " and " + fmtWindowTime(c.Time) + ")"
		}
		if c.Lost {
			tx += "  LOST by a failover"
		}
		_, err := fmt.Fprintf(e.Out, "%s  %-12d  %-2d  %-33s  %s%s\n", fmtWindowTime(c.Time), c.Offset, c.DB, c.Generation, pitr.Display(c.Args, o.maxArg, 16), tx)
		return err
	})
	if err != nil {
		return err
	}
	if !o.json && n == 0 {
		fmt.Fprintln(e.Out, "(no matching commands)")
	}
	return nil
}
