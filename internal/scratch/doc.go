// Package scratch runs throw-away redis-server processes for drills and
// exact point-in-time restores.
//
// New makes the server's own temp dir; the caller writes what the server
// is to load there (DIR/dump.rdb, or a multi-part AOF dir) and calls
// Start, which runs the binary on a free 127.0.0.1 port with protected
// mode on, no save points, DEBUG enabled and its log in DIR/redis.log.
// Wait polls until it has loaded its data and answers PING (or it exited,
// or ctx ended). Close kills it and removes the dir, in every case: call it
// deferred right after New, whatever happens to ctx.
//
// By default the server is a replica of 127.0.0.1:1, where nothing can
// listen without privileges: a replica loads keys whose TTL already passed
// (a primary drops them while loading, from an RDB or an AOF) and never
// expires keys itself, so the loaded dataset is exactly the file's and its
// DEBUG DIGEST is comparable with a manifest's. It never connects anywhere
// else. Options.Primary runs a writable primary instead (the target of a
// replay).
//
// The server runs in its own process group, so that the kill reaches
// anything it forks (a BGSAVE child), and on Linux it dies with the
// process that started it.
package scratch
