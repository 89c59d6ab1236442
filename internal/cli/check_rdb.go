package cli

import "github.com/spf13/cobra"

// placeholder: replaced by the real `check rdb`.
func newCheckRDBCmd(e *env) *cobra.Command {
	return &cobra.Command{Use: "rdb FILE", Short: "Check an RDB file", Args: exactArgs(1, "redback check rdb dump.rdb")}
}
