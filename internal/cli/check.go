package cli

import "github.com/spf13/cobra"

func newCheckCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "check",
		Short: "Check RDB and AOF files the way redis-check-rdb and redis-check-aof do",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("redback check rdb dump.rdb", "unknown check %q: use rdb or aof", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("redback check rdb dump.rdb", "check needs a subcommand: rdb or aof")
		},
	}
	c.AddCommand(newCheckRDBCmd(e))
	c.AddCommand(newCheckAOFCmd(e))
	return c
}
