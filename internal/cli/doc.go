// Package cli implements redback's command line: one file per verb, each an
// options struct with flags and a run function that tests call directly.
// Errors are mapped to exit codes in one place (ExitCode).
package cli
