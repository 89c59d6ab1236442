//go:build race

package rdb

// raceEnabled is true when the tests run under the race detector, which
// makes the byte-by-byte damage sweeps (one goroutine, nothing to race)
// about ten times slower: they then sample fewer positions.
const raceEnabled = true
