// Package drill proves that a backup can be recovered, the way a recovery
// would do it, without touching any real server.
//
// Run fetches a snapshot's stored object, restores it with restore.ToDir
// (decrypt, decompress, verify size, sha256 and the whole RDB, write
// DIR/dump.rdb: the code path of a real recovery to a directory), starts a
// scratch redis-server on a free 127.0.0.1 port in a temp dir and waits
// until it serves. It then proves the data: the key count per db equals the
// manifest's census, DEBUG DIGEST equals the manifest's digest, a sample of
// keys chosen by hash equals the backup value by value (DEBUG DIGEST-VALUE)
// with the same expire time (PEXPIRETIME), and the function libraries are
// those of the census. Each phase is timed. The RTO is what a real
// recovery would take: from the drill's start until the server serves the
// restored data, whose object was verified on the way (fetch, restore,
// load); the proof checks after that are the drill's own cost (DEBUG DIGEST
// blocks a server for O(N)) and are timed separately. The RTO is compared
// with an objective; the RPO is the age of the drilled snapshot.
//
// The scratch server runs as a replica of 127.0.0.1:1, where nothing can
// listen: a replica loads keys whose TTL already passed (a primary drops
// them while loading) and never expires keys itself, so the loaded dataset
// is exactly the snapshot and its digest can be compared exactly. It runs
// in its own process group (and, on Linux, dies with redback); Run kills
// the group, waits for the process and removes the temp dir in every case
// (package scratch).
//
// Options.At drills a point in time (drillRun.point). When a log generation
// covers it, the point is restored twice: Plan.ToDir writes a multi-part
// AOF dir that a first scratch server (a replica of 127.0.0.1:1 too: it
// keeps expired keys while and after loading an AOF, tested on 7.0) loads
// with --appendonly yes, which ends the RTO; then Plan.ToRedis, redback's
// own replay, fills a second scratch server (a primary with active expiry
// off). No digest is recorded for an arbitrary point, so the proof is that
// both paths agree: key count per db, DEBUG DIGEST, a sample of keys and
// the function libraries. A replay into a live primary drops keys whose
// TTL ended between the point and the drill; when DEBUG DIGEST differs,
// both servers SAVE and the two files are compared without the keys whose
// TTL ended before the checks began. A time no generation covers falls back
// to the newest verified snapshot at or before it, with a note.
//
// Both kinds of drill take the same steps (check.go): set up the binary,
// the scratch dir and a pin, restore, load (the RTO ends here), then
// prove the loaded server against a reference, which is the manifest and
// the restored file for a snapshot (snapshotProof) and the replay server
// for a point in time (pointProof).
//
// The Report is JSON-ready and renders as Markdown (Report.Markdown).
package drill
