package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"redback/internal/sentinel"
)

// consistencyOpts are the flags of `redback consistency`.
type consistencyOpts struct {
	redis redisFlags
	url   string
	force bool
	json  bool
}

const consistencyTry = "redback consistency --redis redis://replica.example:6379"

func newConsistencyCmd(e *env) *cobra.Command {
	var o consistencyOpts
	c := &cobra.Command{
		Use:   "consistency --redis URL",
		Short: "Check that a server reloads its own RDB to the same dataset (DEBUG RELOAD)",
		Long: `Records DEBUG DIGEST, runs DEBUG RELOAD (a synchronous SAVE that overwrites
the server's dump.rdb, then an empty-and-load of that file), records DEBUG
DIGEST again, and compares. It reports whether the digests match and how
long the server was blocked by the reload.

The server is blocked for the whole SAVE and load, and its dump.rdb is
overwritten: run it on a replica or a scratch copy, not on a busy primary.
It refuses a primary (role master) with other clients connected unless
--force is given. It needs the DEBUG command: since Redis 7.0 that means
enable-debug-command yes (or local, for loopback clients) in the server
configuration, which takes a restart.

Exit 0 when the digests match, 3 when they differ (or the server cannot load
its own dump), 1 when the check cannot run, 2 on usage errors.`,
		Example: "  " + consistencyTry + "\n  redback consistency --redis redis://127.0.0.1:6380 --json",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef(consistencyTry, "consistency takes no arguments, got %q", strings.Join(args, " "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConsistency(cmd.Context(), e, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.url, "redis", "", "server to check: redis://[user:password@]host:port")
	f.BoolVar(&o.force, "force", false, "run on a primary that has other clients connected (it blocks the server)")
	f.BoolVar(&o.json, "json", false, "print one JSON object instead of text")
	o.redis.addFlags(f)
	return c
}

// consistencyResult is the outcome of one run.
type consistencyResult struct {
	Server       string  `json:"server"`
	Role         string  `json:"role"`
	Clients      int     `json:"connected_clients"`
	DigestBefore string  `json:"digest_before"`
	DigestAfter  string  `json:"digest_after"`
	Match        bool    `json:"match"`
	BlockedSec   float64 `json:"blocked_seconds"`
	ReloadError  string  `json:"reload_error,omitempty"`
}

func infoField(info, name string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+":"); ok {
			return v
		}
	}
	return ""
}

func runConsistency(ctx context.Context, e *env, o consistencyOpts) error {
	// DEBUG RELOAD blocks the server: on a Sentinel-managed set, a replica.
	u, err := o.redis.node(ctx, e, "redis", o.url, sentinel.Options{PreferReplica: true})
	if err != nil {
		return err
	}
	opts := u.GoRedisOptions()
	opts.ReadTimeout = -1 // DEBUG RELOAD and DEBUG DIGEST take as long as the dataset needs
	opts.DisableIdentity = true
	opts.PoolSize = 1
	c := redis.NewClient(opts)
	defer c.Close()
	res := consistencyResult{Server: u.Redacted()}

	info, err := c.Info(ctx, "replication", "clients").Result()
	if err != nil {
		return fmt.Errorf("INFO on %s: %w", u.Redacted(), err)
	}
	res.Role = infoField(info, "role")
	res.Clients, _ = strconv.Atoi(infoField(info, "connected_clients"))

	// DEBUG is a protected command since 7.0: probe it with a harmless subcommand.
	if err := c.Do(ctx, "DEBUG", "HELP").Err(); err != nil {
		if strings.Contains(err.Error(), "not allowed") || strings.Contains(strings.ToLower(err.Error()), "unknown command") {
			return fmt.Errorf("%s refuses DEBUG (%v).\n"+
				"consistency needs DEBUG DIGEST and DEBUG RELOAD: set enable-debug-command yes (or local, for loopback clients)\n"+
				"in the server's configuration file and restart it (the setting cannot be changed at runtime)", u.Redacted(), err)
		}
		return fmt.Errorf("DEBUG HELP on %s: %w", u.Redacted(), err)
	}
	if res.Role == "master" && res.Clients > 1 && !o.force {
		return fmt.Errorf("%s is a primary (role master) with %d other client(s) connected.\n"+
			"DEBUG RELOAD blocks the server for a full SAVE and reload and overwrites its dump.rdb.\n"+
			"Run this on a replica (or a scratch copy) instead, or pass --force to accept the outage",
			u.Redacted(), res.Clients-1)
	}

	if res.DigestBefore, err = c.Do(ctx, "DEBUG", "DIGEST").Text(); err != nil {
		return fmt.Errorf("DEBUG DIGEST on %s: %w", u.Redacted(), err)
	}
	start := time.Now()
	reloadErr := c.Do(ctx, "DEBUG", "RELOAD").Err()
	res.BlockedSec = time.Since(start).Seconds()
	if reloadErr != nil {
		if _, ok := reloadErr.(redis.Error); !ok {
			return fmt.Errorf("DEBUG RELOAD on %s: %w", u.Redacted(), reloadErr)
		}
		res.ReloadError = reloadErr.Error()
	} else if res.DigestAfter, err = c.Do(ctx, "DEBUG", "DIGEST").Text(); err != nil {
		return fmt.Errorf("DEBUG DIGEST on %s after the reload: %w", u.Redacted(), err)
	}
	res.Match = res.ReloadError == "" && res.DigestBefore == res.DigestAfter

	if o.json {
		if err := printJSON(e, res); err != nil {
			return err
		}
		if !res.Match {
			return &silentError{code: ExitVerify}
		}
		return nil
	}
	fmt.Fprintf(e.Out, "server:        %s (role %s, %d client(s) connected)\n", res.Server, res.Role, res.Clients)
	fmt.Fprintf(e.Out, "digest before: %s\n", res.DigestBefore)
	if res.ReloadError != "" {
		fmt.Fprintf(e.Out, "DEBUG RELOAD failed after %s: %s\n", fmtDur(res.BlockedSec), res.ReloadError)
		return &VerifyError{Err: fmt.Errorf("%s could not reload its own dump (%s); check the server log — its dataset may now be empty", u.Redacted(), res.ReloadError)}
	}
	fmt.Fprintf(e.Out, "digest after:  %s\n", res.DigestAfter)
	fmt.Fprintf(e.Out, "blocked:       %s (DEBUG RELOAD)\n", fmtDur(res.BlockedSec))
	if !res.Match {
		fmt.Fprintln(e.Out, "result:        MISMATCH")
		return &VerifyError{Err: fmt.Errorf("digest changed across DEBUG RELOAD: %s before, %s after", res.DigestBefore, res.DigestAfter)}
	}
	fmt.Fprintln(e.Out, "result:        match")
	return nil
}

func fmtDur(sec float64) string {
	return time.Duration(sec * float64(time.Second)).Round(time.Millisecond).String()
}
