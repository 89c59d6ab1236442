package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestMigrate_UsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "--to", "redis://127.0.0.1:1"}, "give both --from URL and --to URL"},
		{[]string{"migrate", "--from", "redis://127.0.0.1:1", "--to", "redis://127.0.0.1:2", "--conflict", "merge"}, "unknown conflict mode"},
		{[]string{"migrate", "--from", "redis://127.0.0.1:1", "--to", "redis://127.0.0.1:2", "--method", "copy"}, "--method must be dump or sync"},
		{[]string{"migrate", "--from", "redis://127.0.0.1:1", "--to", "redis://127.0.0.1:2", "--parallel", "0"}, "--parallel must be between"},
		{[]string{"migrate", "--from", "redis://127.0.0.1:1/2", "--to", "redis://127.0.0.1:2"}, "select source dbs with --db 2"},
	} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), tc.args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != ExitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errb.String(), ExitUsage, tc.want)
		}
	}
}
