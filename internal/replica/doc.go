// Package replica connects to a Redis primary as a replica over a raw
// connection: handshake (PING, AUTH, REPLCONF), PSYNC, the full-sync RDB
// payload in both framings, the command stream with exact replication
// offsets, and the REPLCONF ACK heartbeat.
//
// Offsets. A Position{ReplID, Offset} names the last byte processed, the way
// Redis counts master_repl_offset: after "+FULLRESYNC R O" and the RDB, the
// Position is {R, O}; each command of the stream adds its length in bytes.
// To resume, Sync sends "PSYNC <ReplID> <Offset+1>" (the next byte wanted).
// Position only advances at complete units (a command outside MULTI, or a
// whole MULTI ... EXEC), so resuming never replays a fragment of a
// transaction.
//
// Lifecycle:
//
//	c, err := replica.Dial(ctx, u, replica.Config{})
//	defer c.Close()
//	res, err := c.Sync(ctx, replica.Position{}) // full sync
//	io.Copy(dst, res.RDB)                        // exactly the RDB bytes
//	for { cmd, err := c.Next(ctx); ... }         // the command stream
//
// A Conn owns one goroutine, the ACK heartbeat: it starts when the payload
// begins ($<len> framing), when the payload ended ($EOF: framing, because a
// diskless primary starts the stream on the first ACK after the end mark and
// an early ACK could interleave stream bytes with the mark), or right after
// +CONTINUE. Close stops it and waits for it.
//
// After any error from Sync, the RDB reader or Next, the Conn is broken:
// Close it, Dial again and resume from Position().
package replica
