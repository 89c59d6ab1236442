// Package pitr restores a repository to a point in time: the base snapshot of
// a log generation plus the shipped log segments replayed up to a target.
//
// NewPlan is pure apart from reading the repository: from the generations,
// their segments and a Target (a time, just before a command, or an offset)
// it picks the generation and base snapshot that cover the target, checks
// that the log needed is contiguous, and finds the exact cut: a planner
// searches the generations for each kind of target, walking a generation's
// chain of segments with a cursor (which knows where an open transaction
// began and where the last command ended), and the Plan it returns is only
// the decision (base, segments with the offsets each contributes, the
// stop position, notes). The cut is
// always at a command boundary outside MULTI … EXEC: a target that falls
// inside a transaction (a receive time between MULTI and EXEC, an offset
// inside it, or a matching command queued inside it) restores the state
// before the MULTI, and the Plan says so in its Notes. Plan.ToRedis,
// Plan.ToDir and Plan.ToRDB do the I/O; segments are streamed, never held in
// memory.
//
// Times are receive times (unix ms) recorded by the shipper, the only clock
// a log has: "at T" means every command received at or before T's
// millisecond. Offsets are replication offsets; the offset of a command is
// the offset before it (its first byte is offset+1), which is also the
// offset of the state restored "just before" it.
//
// The shipper never cuts a segment inside a transaction. Segments written
// otherwise are handled when a transaction spans at most two segments, or
// when its EXEC is seen before the target.
//
// ToRedis loads the base with the restore package and then replays the log
// over one connection, pipelined, writing the stored bytes as they are.
// With restore.ConflictFail (the default) it refuses a target holding any
// key in any db, because the log may write to dbs the base does not hold.
// ToDir writes a multi-part AOF directory for redis-server --appendonly yes;
// ToRDB loads that directory into a scratch redis-server and saves an RDB.
//
// Log streams the stored commands for `redback log`; Windows describes what
// each generation can restore for `redback list`.
package pitr
