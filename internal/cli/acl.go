package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"redback/internal/acl"
)

type aclOpts struct {
	modes   []string
	user    string
	minimal bool
	json    bool
}

const aclTry = "redback acl --for snapshot,ship --user redback | redis-cli -p 6379"

// aclJSON is what `redback acl --json` prints.
type aclJSON struct {
	User    string     `json:"user"`
	Command string     `json:"command,omitempty"` // empty when the modes need no user
	Rules   []string   `json:"rules"`
	Modes   []acl.Mode `json:"modes"`
}

func newACLCmd(e *env) *cobra.Command {
	o := &aclOpts{}
	c := &cobra.Command{
		Use:   "acl [--for MODE,...] [--user NAME]",
		Short: "Print the least-privilege ACL SETUSER line for the modes redback runs",
		Long: `Print the ACL SETUSER command that gives one Redis user exactly the commands,
key patterns and channels the named modes need, and no more: such a user cannot
run FLUSHALL, CONFIG SET or SHUTDOWN, nor DEBUG unless the consistency mode is
named. Standard output holds only the command (pipe it into redis-cli); why
each permission is there goes to standard error. The line sets no password
and keeps any the user has: give it one with ACL SETUSER NAME >PASSWORD.

Modes: ` + strings.Join(acl.Names(), ", ") + `. The default is snapshot,ship, what the agent
does on a source. Permissions that only make a mode better (the RESP3 HELLO,
time markers, functions) are included unless --minimal; docs/security.md
explains each.`,
		Example: "  " + aclTry + "\n  redback acl --for restore --user restorer\n  redback acl --for consistency --json",
		Args:    exactArgs(0, aclTry),
		RunE: func(cmd *cobra.Command, _ []string) error {
			modes, err := acl.Lookup(o.modes)
			if err != nil {
				return usagef(aclTry, "--for: %v", err)
			}
			for _, m := range modes {
				if m.Server == "sentinels" && len(modes) > 1 {
					return usagef("redback acl --for sentinel --user redback | redis-cli -p 26379", "--for: the sentinel mode's user goes on the sentinels, not on a data node: name it on its own")
				}
			}
			if err := acl.CheckUser(o.user); err != nil {
				return usagef(aclTry, "--user: %v", err)
			}
			return runACL(e, o, modes)
		},
	}
	f := c.Flags()
	f.StringSliceVar(&o.modes, "for", []string{"snapshot", "ship"}, "modes the user runs, comma-separated: "+strings.Join(acl.Names(), ","))
	f.StringVar(&o.user, "user", "redback", "the ACL user name")
	f.BoolVar(&o.minimal, "minimal", false, "only the permissions each mode cannot work without")
	f.BoolVar(&o.json, "json", false, "print the rules and the reason for each permission as JSON")
	return c
}

func runACL(e *env, o *aclOpts, modes []acl.Mode) error {
	rules := acl.Rules(modes, !o.minimal, "")
	needed := false
	for _, m := range modes {
		needed = needed || len(m.Commands) > 0
	}
	line := ""
	if needed {
		line = acl.SetUser(o.user, modes, !o.minimal)
	}
	if o.json {
		return writeJSONResult(e, aclJSON{User: o.user, Command: line, Rules: rules, Modes: modes}, nil)
	}
	for _, m := range modes {
		fmt.Fprintf(e.Err, "# %s (on the %s): %s\n", m.Name, m.Server, m.Summary)
		for _, p := range m.Commands {
			if p.Optional != "" && o.minimal {
				continue
			}
			fmt.Fprintf(e.Err, "#   +%-14s %s", p.Command, p.Why)
			if p.Since != "" {
				fmt.Fprintf(e.Err, " (not in the line: older servers refuse the name; on %s add it with ACL SETUSER %s +%s)", p.Since, o.user, p.Command)
			}
			if p.Optional != "" {
				fmt.Fprintf(e.Err, " (optional: without it, %s)", p.Optional)
			}
			fmt.Fprintln(e.Err)
		}
		if m.Keys != "" {
			fmt.Fprintf(e.Err, "#   %-15s %s\n", m.Keys, keysWhy(m.Keys))
		}
		for _, d := range m.Dangerous {
			fmt.Fprintf(e.Err, "#   note: this mode needs %s\n", d)
		}
	}
	if !needed {
		fmt.Fprintln(e.Err, "# no ACL user is needed for these modes")
		return nil
	}
	fmt.Fprintf(e.Err, "# then set a password: ACL SETUSER %s >PASSWORD (or #SHA256-HEX), and ACL SAVE or CONFIG REWRITE to keep it\n", o.user)
	fmt.Fprintln(e.Out, line)
	return nil
}

func keysWhy(k string) string {
	if k == "%R~*" {
		return "reads every key (no writes)"
	}
	return "reads and writes every key"
}
