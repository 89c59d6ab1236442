// Package restore writes the keys of an RDB stream (a repository snapshot or
// a local file) into a live Redis server, or into an RDB file a server can
// load.
//
// NewPlan is pure: from the source's RDB version, the target's capabilities
// (Target, probed from INFO and CONFIG GET) and the filters it decides which
// target dbs must be empty, and Plan.Decide says per key whether it is
// restored with its payload as is, with the DUMP footer version lowered to
// the target's (formats §4.3), converted to plain commands, or skipped
// (filtered, already expired). ToRedis and ToFile do the I/O.
//
// ToRedis sends RESTORE key ttl payload ABSTTL ... over Options.Parallel raw
// connections, pipelined in batches bounded by Options.BatchBytes and
// Options.BatchKeys; a value larger than a batch is written alone, straight
// from the reader's buffer. Memory is therefore bounded by the batch limits
// times the number of connections plus the largest single value (which the
// rdb.Reader caps with MaxValueBytes), never by the dataset.
//
// Converted keys are built under a temporary key and moved in place with
// RENAME (--conflict replace) or RENAMENX (fail, skip), so a half-built value
// is never visible under the real name. What conversion loses: stream
// consumers' seen/active times (XCLAIM sets them to now), pending entries
// whose message was deleted, and hash field TTLs on targets older than 7.4.
package restore
