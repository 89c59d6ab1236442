package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
)

// Stdio is where a command reads and writes.
type Stdio struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
	// SetMemoryLimit, when set, is the process's runtime/debug.SetMemoryLimit:
	// a verb whose memory is set by its flags (ship's --spool-size) sets a
	// soft limit from them. cmd/redback sets it; in-process runs (tests)
	// leave it nil, so that they do not change their binary's GC.
	SetMemoryLimit func(int64) int64
}

// env is what every verb gets: streams, a logger and the environment.
type env struct {
	Stdio
	log    *slog.Logger
	getenv func(string) string
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// Version is set at build time with -ldflags "-X redback/internal/cli.Version=...".
var Version = "dev"

// Run executes redback with args and returns the exit code.
func Run(ctx context.Context, args []string, stdio Stdio) int {
	// go-redis logs dial retries to stderr by itself; redback reports errors once, itself.
	redis.SetLogger(quietLogger{})
	e := &env{Stdio: stdio, getenv: os.Getenv}
	root := newRootCmd(e)
	root.SetArgs(args)
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitCode(err)
	var s *silentError
	if !errors.As(err, &s) {
		fmt.Fprintf(stdio.Err, "redback: %v\n", err)
	}
	return code
}

func newRootCmd(e *env) *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:           "redback",
		Short:         "Disaster recovery for Redis: verified snapshots, log shipping, point-in-time restore, drills",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			e.log = slog.New(slog.NewTextHandler(e.Err, &slog.HandlerOptions{Level: level}))
		},
	}
	// An unknown verb is a usage error (exit 2): cobra's own check would
	// make it a plain error. Without arguments, the help.
	root.Args = cobra.ArbitraryArgs
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if sug := cmd.SuggestionsFor(args[0]); len(sug) > 0 {
			msg += "; did you mean " + strings.Join(sug, " or ") + "?"
		}
		return usagef("redback --help", "%s", msg)
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log debug detail to stderr")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &UsageError{Msg: err.Error(), Try: cmd.CommandPath() + " --help"}
	})
	root.SetHelpTemplate(root.HelpTemplate() + "\n" + exitHelpText + "\n")
	e.log = slog.New(slog.NewTextHandler(e.Err, nil))
	for _, c := range verbs(e) {
		root.AddCommand(c)
	}
	return root
}

// verbs lists every top-level command.
func verbs(e *env) []*cobra.Command {
	return []*cobra.Command{
		newCheckCmd(e),
		newDigestCmd(e),
		newConsistencyCmd(e),
		newSnapshotCmd(e),
		newListCmd(e),
		newVerifyCmd(e),
		newDrillCmd(e),
		newRestoreCmd(e),
		newPruneCmd(e),
		newKeepCmd(e),
		newLifecycleCmd(e),
		newAgentCmd(e),
		newShipCmd(e),
		newLogCmd(e),
		newMigrateCmd(e),
		newACLCmd(e),
		newUICmd(e),
		newCopyCmd(e),
		newRekeyCmd(e),
	}
}

// exactArgs is cobra.ExactArgs with a usage error that names the command.
func exactArgs(n int, try string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef(try, "%s takes %d argument(s), got %d (%s)", cmd.CommandPath(), n, len(args), strings.Join(args, " "))
		}
		return nil
	}
}
