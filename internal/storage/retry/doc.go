// Package retry is a storage.Backend decorator that retries operations
// failing with a transient error (storage.IsTransient) with capped,
// jittered exponential backoff, and stops when the context ends.
//
// What is retried:
//   - Stat, Delete, PutIf and opening a Get: the whole call.
//   - Put: only when the reader is an io.Seeker; it is rewound to where it
//     was when Put was called. Other readers cannot be replayed, so the
//     first error is returned.
//   - List: the listing restarts and skips keys up to the last one already
//     passed to fn, so fn sees every key once, in order. An error returned
//     by fn is never retried.
//
// Errors while reading a Get's body are not retried. A PutIf retried after
// an ambiguous failure (request sent, response lost) may report
// storage.ErrPrecondition although the earlier attempt succeeded.
package retry
