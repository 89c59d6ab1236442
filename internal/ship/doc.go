// Package ship ships a Redis primary's replication stream (or its
// multi-part AOF directory) into a repository as log segments,
// continuously (redback ship).
//
// A Shipper connects as a replica. With no open generation of the source in
// the repository it asks for a full sync (PSYNC ? -1): the RDB becomes the
// base snapshot of a new Generation (stored and verified by
// snapshot.Store; the generation manifest is written after it). The command
// stream then becomes Segments in the format catalog.Segment defines: valid
// AOF that starts with SELECT <db>, the primary's command bytes verbatim,
// control traffic (PING, REPLCONF) counted in offsets but not written,
// #TS:<unix> where the second changes, and an index of checkpoints.
//
// A Shipper reads one Source (source.go) into one pipeline. The source is
// the replication stream (replStream, repl.go: the replica link, resume,
// full syncs, failovers, time markers) or, with AOFDir, a multi-part AOF
// directory (aofTail, aofdir.go); it starts and ends generations and feeds
// commands with their offsets, databases and times through the pipeline's
// methods. The pipeline (pipeline.go, upload.go) is the same for both.
// Three parts run inside Run, which owns and waits for every goroutine:
//
//   - the source reads (the socket, the files) and appends each command to
//     the segment builder (in memory); it never waits for storage;
//   - a cutter closes the segment being built early enough that it is
//     stored within about Interval (the RPO: Interval less the time storing
//     a segment takes now, at least Interval/2), or at once when nothing
//     waits for storage and the last cut is Interval ago (or the source
//     does at SegmentSize), only between complete units (never inside
//     MULTI ... EXEC); an idle source's control traffic is not cut into
//     segments but stored as the generation's heartbeat (catalog.Quiet);
//   - the uploader seals segments (zstd, optional age) and stores the data
//     object, then the manifest, with bounded concurrency for data and
//     strictly in order for manifests, so what the repository shows is always
//     a contiguous prefix. The durable offset is the end of that prefix.
//
// The spool (the segment being built plus cut segments not yet stored) is
// bounded by SpoolSize. When storage does not keep up and it fills, the
// shipper logs an error, drops the connection, waits until the spool is
// stored and reconnects with PSYNC from where it stopped: +CONTINUE keeps the
// generation without a gap; a full resync ends the generation at its durable
// end and starts a new one. A gap is never silent.
//
// Reconnects resume with PSYNC <replid> <processed offset + 1>. A full
// resync or a changed replid ends the generation (manifest rewritten with
// Ended, EndOffset, EndReason) and starts a new one. A restarted shipper
// needs no local state: it resumes the newest open generation of the same
// source address from the end of its stored segments. Segment manifests
// carry an extra "db_at_end" field (the database in effect at End) so that
// the resumed stream's database is known without reading the segment.
//
// With Ack == AckDurable the REPLCONF ACK offset is the durable offset, so
// WAIT on the primary counts a write only once it is in the repository.
//
// With AOFDir instead of Source the Shipper tails a Redis 7 multi-part AOF
// directory (aofdir.go): each AOF base is the base snapshot of a generation
// (mode "aof"), its incr files are the log, offsets are positions in their
// concatenation, times come from the #TS annotations, and a rewrite starts a
// new generation. The same pipeline stores the segments; an AOF has no
// heartbeat and acknowledges nothing.
package ship
