// Package migrate copies keys between two live Redis servers (redback
// migrate): the classic "side instance -> production" step of a recovery.
//
// The source is read with SCAN (one connection per db) and, over
// Options.Parallel more connections, pipelined MULTI / (DUMP key,
// PEXPIRETIME key)... / EXEC batches, so that each key's value and expire
// time are read at the same instant (PTTL plus the local clock on servers
// older than 7.0, which lack PEXPIRETIME). The records go to the target
// through restore.FromRecords: the same plan, filters, conflict modes,
// fallback conversion, pipelined RESTORE ... ABSTTL batches and progress
// as `redback restore --to-redis`. Function libraries (FUNCTION LIST
// WITHCODE) are loaded first, as restore does.
//
// SCAN may return a key twice (while the source's hash table is resized):
// duplicates are dropped with a set of 64-bit key hashes per db, 8 to 16
// bytes per key of the db being copied. Keys deleted or expired between
// SCAN and DUMP are counted as vanished, not failed. Memory is otherwise
// bounded by the batches in flight: (2 x Parallel + 2) x BatchKeys keys.
package migrate
