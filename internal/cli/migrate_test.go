package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"redback/internal/redistest"
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

func TestMigrate_JSON(t *testing.T) {
	ctx := t.Context()
	src, dst := redistest.Start(t), redistest.Start(t)
	c := src.Client()
	for i := range 50 {
		c.Set(ctx, "k"+strconv.Itoa(i), i, 0)
	}
	c.Set(ctx, "ttl", "v", time.Hour)
	code, out, errs := runCheckCLI(t, "migrate", "--from", src.URL(), "--to", dst.URL(), "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	var j map[string]any
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	for _, k := range []string{"source", "target", "source_dbs", "keys_scanned", "keys_restored", "keys_skipped", "keys_expired",
		"keys_filtered", "keys_vanished", "keys_converted", "keys_footer_rewritten", "keys_failed", "failures",
		"functions_loaded", "functions_skipped", "bytes", "duration_seconds", "keys_per_second", "notes"} {
		if _, ok := j[k]; !ok {
			t.Errorf("--json lacks %q", k)
		}
	}
	if j["keys_restored"].(float64) != 51 || j["keys_scanned"].(float64) != 51 || len(j["failures"].([]any)) != 0 {
		t.Errorf("json %v", j)
	}
	if got, want := dst.Digest(ctx), src.Digest(ctx); got != want {
		t.Errorf("target digest %s, source %s", got, want)
	}
	if strings.Contains(errs, "changed") {
		t.Errorf("warning about an idle source: %s", errs)
	}
}

// TestMigrate_DumpWarnsWhenSourceChanges writes to the source while
// --method dump copies it: the end of the run must warn that the copy is
// not one point in time and point to --method sync.
func TestMigrate_DumpWarnsWhenSourceChanges(t *testing.T) {
	ctx := t.Context()
	src, dst := redistest.Start(t), redistest.Start(t)
	if err := src.Client().Do(ctx, "DEBUG", "POPULATE", "20000", "k", "100").Err(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 1000000; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := src.Client().Incr(ctx, "counter").Err(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	// The writer has written at least once before the copy starts.
	for i := 0; i < 1000; i++ {
		if n, _ := src.Client().Get(ctx, "counter").Int(); n > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, out, errs := runCheckCLI(t, "migrate", "--from", src.URL(), "--to", dst.URL(), "--conflict", "replace")
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code != ExitOK || !strings.Contains(errs, "warning: the source changed while it was copied") || !strings.Contains(errs, "--method sync") {
		t.Fatalf("exit %d, want a warning pointing to --method sync:\n%s%s", code, out, errs)
	}
}
