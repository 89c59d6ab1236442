package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"redback/internal/aof"
)

// checkAOFOpts are the flags of `redback check aof`.
type checkAOFOpts struct {
	fix         bool
	yes         bool
	truncateTo  int64
	json        bool
	truncateSet bool
}

const checkAOFTry = "redback check aof /var/lib/redis/appendonlydir"

func newCheckAOFCmd(e *env) *cobra.Command {
	var o checkAOFOpts
	c := &cobra.Command{
		Use:   "aof PATH",
		Short: "Check (and fix) an AOF the way redis-check-aof does",
		Long: `Checks an AOF exactly as redis-check-aof 7.0 does and reports the same
numbers (size, ok_up_to, ok_up_to_line, diff). PATH is an AOF file (plain RESP
or with an RDB preamble), a multi-part manifest, or the appendonlydir
directory (its manifest is used).

Damage is classified:
  torn tail   the last command (or an unfinished MULTI) was cut by a crash;
              truncating to ok_up_to loses only that, as Redis itself does
              with aof-load-truncated yes.
  corrupt     bad bytes in the middle; truncating to ok_up_to would also
              throw away every valid command after them.
The file, offset and line of the damage are printed, with what a fix loses
(bytes and commands after ok_up_to).

--fix truncates a torn tail of the last file without asking (the flag is the
consent; redis-check-aof asks on stdin). Corruption is only truncated with
--fix --yes, which makes the file byte-identical to redis-check-aof --fix.
Only the last file of a multi-part set is ever changed; the manifest never is.

--truncate-to-timestamp UNIX cuts the last file at its first #TS annotation
later than UNIX (needs aof-timestamp-enabled yes when the AOF was written),
like redis-check-aof --truncate-to-timestamp.

Exit 0 when valid (or fixed), 3 when damaged and not fixed, 1 when a file
cannot be read or a timestamp cut is impossible, 2 on usage errors.`,
		Example: "  redback check aof /var/lib/redis/appendonlydir\n" +
			"  redback check aof --fix appendonlydir/appendonly.aof.manifest\n" +
			"  redback check aof --truncate-to-timestamp 1795520462 appendonlydir",
		Args: exactArgs(1, checkAOFTry),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.truncateSet = cmd.Flags().Changed("truncate-to-timestamp")
			return runCheckAOF(cmd.Context(), e, o, args[0])
		},
	}
	f := c.Flags()
	f.BoolVar(&o.fix, "fix", false, "truncate a torn tail of the last file to ok_up_to (no prompt: the flag is the consent)")
	f.BoolVar(&o.yes, "yes", false, "with --fix: also truncate at corruption in the middle of the last file, discarding every command after it")
	f.Int64Var(&o.truncateTo, "truncate-to-timestamp", 0, "cut the last file at the first #TS annotation later than this unix time")
	f.BoolVar(&o.json, "json", false, "print one JSON object instead of text")
	return c
}

// resolveAOFPath maps an appendonlydir to its manifest.
func resolveAOFPath(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return path, nil
	}
	m, err := filepath.Glob(filepath.Join(path, "*.manifest"))
	if err != nil {
		return "", err
	}
	var keep []string
	for _, p := range m {
		if !strings.HasPrefix(filepath.Base(p), "temp-") {
			keep = append(keep, p)
		}
	}
	switch len(keep) {
	case 0:
		return "", fmt.Errorf("%s: no *.manifest in this directory", path)
	case 1:
		return keep[0], nil
	}
	return "", usagef("redback check aof "+keep[0], "%s holds %d manifests (%s): name one", path, len(keep), strings.Join(keep, ", "))
}

func runCheckAOF(_ context.Context, e *env, o checkAOFOpts, path string) error {
	if o.fix && o.truncateSet {
		return usagef(checkAOFTry, "--fix and --truncate-to-timestamp cannot be combined")
	}
	if o.yes && !o.fix {
		return usagef("redback check aof --fix --yes "+path, "--yes only applies to --fix")
	}
	if o.truncateSet && o.truncateTo == 0 {
		return usagef("redback check aof --truncate-to-timestamp 1795520462 "+path, "--truncate-to-timestamp needs a non-zero unix time")
	}
	p, err := resolveAOFPath(path)
	if err != nil {
		return err
	}
	rep, err := aof.Check(p, aof.CheckOptions{Fix: o.fix, FixCorruption: o.yes, TruncateToTimestamp: o.truncateTo})
	if err != nil {
		if rep != nil && len(rep.Files) > 0 && !o.json {
			printAOFReport(e.Out, rep, o, false)
		}
		return err
	}
	if o.json {
		if err := printJSON(e, aofReportJSON(rep)); err != nil {
			return err
		}
		if !rep.Valid() {
			return &silentError{code: ExitVerify}
		}
		return nil
	}
	printAOFReport(e.Out, rep, o, true)
	if d := rep.Damaged(); d != nil {
		if d.Err != nil {
			return &VerifyError{Err: d.Err}
		}
		return &VerifyError{Err: errors.New(d.Name + ": damaged")}
	}
	return nil
}

// printAOFReport prints rep for people; verdict adds the final valid/damaged line.
func printAOFReport(w io.Writer, rep *aof.Report, o checkAOFOpts, verdict bool) {
	n := len(rep.Files) + len(rep.Unchecked)
	fmt.Fprintf(w, "AOF %s (%s, %d file(s))\n", rep.Path, rep.Kind, n)
	for i := range rep.Files {
		f := &rep.Files[i]
		if f.TruncatedToTimestamp {
			fmt.Fprintf(w, "  %s (%s, %s): size=%d: cut at offset %d, the first #TS annotation after %d (%d bytes removed)\n",
				f.Name, f.Role, f.Format, f.Size, f.TruncatedAt, o.truncateTo, f.Size-f.TruncatedAt)
			continue
		}
		fmt.Fprintf(w, "  %s (%s, %s): size=%d, ok_up_to=%d, ok_up_to_line=%d, diff=%d: ",
			f.Name, f.Role, f.Format, f.Size, f.OKUpTo, f.OKUpToLine, f.Diff)
		switch {
		case f.Empty:
			fmt.Fprintln(w, "empty")
			continue
		case f.Damage == aof.DamageNone:
			fmt.Fprintln(w, "valid")
			continue
		}
		fmt.Fprintln(w, strings.ToUpper(f.Damage.String()))
		if f.Err != nil {
			fmt.Fprintf(w, "    damage at %s offset %d, line %d: %v\n", f.Name, f.Err.Offset, f.Err.Line, f.Err.Err)
		}
		loss := fmt.Sprintf("%d bytes and %d command(s) after offset %d", f.Diff, f.LostCommands, f.OKUpTo)
		switch {
		case f.Fixed:
			fmt.Fprintf(w, "    FIXED: truncated to %d bytes; lost %s\n", f.OKUpTo, loss)
		case f.Format == "rdb" && f.OKUpTo == 0 && f.Damage == aof.DamageCorrupt:
			fmt.Fprintln(w, "    the RDB preamble is damaged: truncation cannot fix it; restore this file from a backup")
		case !f.Last:
			fmt.Fprintf(w, "    not the last file: it cannot be fixed by truncation (a fix would lose %s and every later file); restore it from a backup\n", loss)
		case f.Damage == aof.DamageTornTail:
			fmt.Fprintf(w, "    a fix (--fix) truncates to %d bytes, losing %s\n", f.OKUpTo, loss)
		default:
			fmt.Fprintf(w, "    corruption in the middle: truncating to %d bytes would lose %s (valid commands included);\n"+
				"    prefer restoring from a backup; --fix --yes truncates anyway\n", f.OKUpTo, loss)
		}
	}
	for _, u := range rep.Unchecked {
		fmt.Fprintf(w, "  %s: not checked (an earlier file is damaged)\n", u)
	}
	if !verdict {
		return
	}
	if rep.Valid() {
		fmt.Fprintln(w, "AOF is valid")
	} else {
		fmt.Fprintln(w, "AOF is damaged")
	}
}

type aofFileJSON struct {
	aof.FileReport
	Damage string         `json:"damage"`
	Error  *aofDamageJSON `json:"error,omitempty"`
}

type aofDamageJSON struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
}

type aofReportJSON0 struct {
	Path      string        `json:"path"`
	Kind      string        `json:"kind"`
	Valid     bool          `json:"valid"`
	Files     []aofFileJSON `json:"files"`
	Unchecked []string      `json:"unchecked,omitempty"`
}

func aofReportJSON(rep *aof.Report) aofReportJSON0 {
	out := aofReportJSON0{Path: rep.Path, Kind: rep.Kind.String(), Valid: rep.Valid(), Unchecked: rep.Unchecked, Files: []aofFileJSON{}}
	for _, f := range rep.Files {
		j := aofFileJSON{FileReport: f, Damage: f.Damage.String()}
		if f.Err != nil {
			j.Error = &aofDamageJSON{File: f.Err.File, Offset: f.Err.Offset, Line: f.Err.Line, Reason: f.Err.Err.Error()}
		}
		out.Files = append(out.Files, j)
	}
	return out
}
