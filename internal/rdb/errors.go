package rdb

import (
	"errors"
	"fmt"
)

// posError is a problem found at an offset relative to the bytes being
// parsed (a value or a blob). Decode and Reader turn it into a FormatError
// with an absolute offset.
type posError struct {
	off int
	err error
}

func (e *posError) Error() string { return e.err.Error() }
func (e *posError) Unwrap() error { return e.err }

// errAt returns a posError at off with a formatted reason.
func errAt(off int, format string, args ...any) error {
	return &posError{off: off, err: fmt.Errorf(format, args...)}
}

// truncAt returns a posError at off wrapping ErrTruncated.
func truncAt(off, want, have int) error {
	return &posError{off: off, err: fmt.Errorf("truncated: want %d bytes, have %d: %w", want, have, ErrTruncated)}
}

// rebase moves a blob-relative posError to the enclosing value: blobOff is
// where the blob's bytes start; a compressed blob has no byte-exact position
// in the value, so its error points at the string instead.
func rebase(err error, strOff, blobOff int, compressed bool, what string) error {
	if err == nil {
		return nil
	}
	var pe *posError
	if !errors.As(err, &pe) {
		return err
	}
	if compressed {
		return &posError{off: strOff, err: fmt.Errorf("%s (LZF-compressed, at uncompressed offset %d): %w", what, pe.off, pe.err)}
	}
	return &posError{off: blobOff + pe.off, err: fmt.Errorf("%s: %w", what, pe.err)}
}
