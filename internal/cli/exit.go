package cli

import (
	"context"
	"errors"
	"fmt"

	"filippo.io/age"

	"redback/internal/pack"
)

// Exit codes, documented in `redback --help`.
const (
	ExitOK       = 0 // success
	ExitFailure  = 1 // the operation could not be done (I/O, network, server refused)
	ExitUsage    = 2 // bad flags or arguments
	ExitVerify   = 3 // data failed verification (damaged file, digest mismatch, missing key)
	exitHelpText = `Exit codes:
  0  success
  1  failure (I/O, network, a server refused)
  2  usage error (bad flags or arguments)
  3  verification failed (damaged data, digest mismatch, missing key, objective missed)`
)

// UsageError is a mistake in the command line. Try, when set, is an example
// of a correct call.
type UsageError struct {
	Msg string
	Try string
}

func (e *UsageError) Error() string {
	if e.Try != "" {
		return fmt.Sprintf("%s\nTry: %s", e.Msg, e.Try)
	}
	return e.Msg
}

// usagef builds a UsageError.
func usagef(try, format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...), Try: try}
}

// VerifyError marks err as a failed verification (exit code 3).
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string            { return e.Err.Error() }
func (e *VerifyError) Unwrap() error            { return e.Err }
func (e *VerifyError) VerificationFailed() bool { return true }

// silentError carries an exit code whose message was already printed.
type silentError struct{ code int }

func (e *silentError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var s *silentError
	if errors.As(err, &s) {
		return s.code
	}
	var u *UsageError
	if errors.As(err, &u) {
		return ExitUsage
	}
	if pack.VerificationFailed(err) { // rdb.FormatError, aof.CorruptionError, verify findings, ...
		return ExitVerify
	}
	if errors.Is(err, context.Canceled) {
		return ExitFailure
	}
	return ExitFailure
}

// loadIdentities reads the --identity file (or $REDBACK_IDENTITY_FILE,
// $REDBACK_IDENTITY); one that cannot be read or parsed is a usage error
// (exit 2) in every verb.
func loadIdentities(e *env, path, try string) ([]age.Identity, error) {
	ids, err := pack.LoadIdentities(path, e.getenv)
	if err != nil {
		return nil, usagef(try, "--identity: %v", err)
	}
	return ids, nil
}
