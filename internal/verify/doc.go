// Package verify re-reads a repository and reports what is wrong with it.
//
// Run checks every selected snapshot end to end — manifest readable and
// sane, data object present, stored size and sha256 as recorded, decrypts,
// decompresses, parses completely as an RDB, CRC-64 status, key census and
// DEBUG DIGEST recomputed and compared with the manifest — and reports every
// problem as a Finding without stopping at the first one. Data objects are
// streamed: memory is bounded by the codec windows and the largest single
// value, never by the snapshot size.
//
// Data objects under data/snapshots/ without a manifest (left by an
// interrupted write or an interrupted prune) are reported as information,
// not as damage: no reader ever uses them.
//
// Further object kinds (log segments, generations) plug in as a Checker in
// Options.Checkers; their findings and counts join the same Summary.
package verify
