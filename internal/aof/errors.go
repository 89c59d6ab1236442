package aof

import (
	"errors"
	"fmt"
)

// ErrTruncated is wrapped by a CorruptionError when the input ends inside a
// command or an annotation line (a torn tail).
var ErrTruncated = errors.New("unexpected end of file")

// CorruptionError reports damaged AOF data: the file, the byte offset where
// the problem was found, its 1-based line (newline bytes before Offset plus
// one) and the reason.
type CorruptionError struct {
	File   string
	Offset int64
	Line   int64
	Err    error
}

func (e *CorruptionError) Error() string {
	f := e.File
	if f == "" {
		f = "aof"
	}
	return fmt.Sprintf("%s: offset %d (line %d): %v", f, e.Offset, e.Line, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// VerificationFailed marks a CorruptionError as failed verification (exit code 3).
func (e *CorruptionError) VerificationFailed() bool { return true }

// ManifestSyntaxError reports a manifest that Redis would refuse to load. Line is
// the 1-based line number as Redis counts it (0 when the whole file is at
// fault) and Text the offending line, trimmed.
type ManifestSyntaxError struct {
	File string
	Line int
	Text string
	Err  error
}

func (e *ManifestSyntaxError) Error() string {
	f := e.File
	if f == "" {
		f = "manifest"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d %q: %v", f, e.Line, e.Text, e.Err)
	}
	return fmt.Sprintf("%s: %v", f, e.Err)
}

func (e *ManifestSyntaxError) Unwrap() error { return e.Err }

// VerificationFailed marks a ManifestSyntaxError as failed verification (exit code 3).
func (e *ManifestSyntaxError) VerificationFailed() bool { return true }

// TimestampError is a --truncate-to-timestamp request that cannot be done
// (redis-check-aof exits 1 for each): the first annotation past the
// timestamp is at offset 0, or it is in a file that is not the last one.
type TimestampError struct {
	File      string
	Offset    int64
	Timestamp int64
	Msg       string
}

func (e *TimestampError) Error() string {
	return fmt.Sprintf("%s: offset %d: %s", e.File, e.Offset, e.Msg)
}
