package cli

import (
	"encoding/json"
	"fmt"

	"redback/internal/restore"
)

// keysFailed turns keys the target did not take into an error (verb:
// "restored", "copied") unless err already says what went wrong.
func keysFailed(res *restore.Result, verb string, err error) error {
	if err == nil && res.KeysFailed > 0 {
		return fmt.Errorf("%d of %d keys were not %s (see the reasons above)", res.KeysFailed, res.KeysFailed+res.KeysRestored+res.KeysSkipped, verb)
	}
	return err
}

// printJSON prints v as indented JSON on stdout: every --json output.
func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONResult prints v as indented JSON and returns err as an exit code
// without printing it again.
func writeJSONResult(e *env, v any, err error) error {
	if jerr := printJSON(e, v); jerr != nil {
		return jerr
	}
	if err != nil {
		return &silentError{code: ExitCode(err)}
	}
	return nil
}

// printKeyFailures lists the keys that failed (and how many more were not
// listed) and the result's notes on stderr.
func printKeyFailures(e *env, res *restore.Result) {
	for _, f := range res.Failures {
		fmt.Fprintf(e.Err, "failed: db %d key %q: %s\n", f.DB, f.Key, f.Reason)
	}
	if n := res.KeysFailed - int64(len(res.Failures)); n > 0 {
		fmt.Fprintf(e.Err, "failed: ... and %d more keys\n", n)
	}
	if res.KeysRewritten > 0 {
		fmt.Fprintf(e.Err, "note: %d keys came from a newer RDB version: restored with the DUMP footer relabelled to the target's version (their types are known to it)\n", res.KeysRewritten)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(e.Err, "note: %s\n", n)
	}
}

// keysJSON is the part of the --json output of restore and migrate that a
// restore.Result fills: its own JSON fields, with failures and notes always
// present (never null or left out) and the rate added.
type keysJSON struct {
	*restore.Result
	Failures        []restore.Failure `json:"failures"`
	Notes           []string          `json:"notes"`
	DurationSeconds float64           `json:"duration_seconds"`
	KeysPerSecond   float64           `json:"keys_per_second"`
}

// newKeysJSON wraps res with the duration in seconds.
func newKeysJSON(res *restore.Result, dur float64) keysJSON {
	j := keysJSON{Result: res, Failures: res.Failures, Notes: res.Notes, DurationSeconds: dur}
	if j.Failures == nil {
		j.Failures = []restore.Failure{}
	}
	if j.Notes == nil {
		j.Notes = []string{}
	}
	if dur > 0 {
		j.KeysPerSecond = float64(res.KeysRestored) / dur
	}
	return j
}
