package cli

import "github.com/spf13/cobra"

// placeholder: replaced by the real `digest`.
func newDigestCmd(e *env) *cobra.Command {
	return &cobra.Command{Use: "digest FILE", Short: "Print the DEBUG DIGEST of an RDB file", Args: exactArgs(1, "redback digest dump.rdb")}
}
