// Package primary plays a Redis primary for one replica, to feed a server
// an RDB at its own load speed: the server is told REPLICAOF this
// process, and what it receives is a full sync (formats §5).
//
// Accept waits on a listener for the replica's connection and answers its
// handshake: PING (+PONG), AUTH with the one-time token the caller set as
// the server's masterauth (anything else is refused and the connection
// closed; only an authenticated replica reaches PSYNC), every REPLCONF
// (+OK; the capabilities are recorded, and `capa eof` is required), then
// PSYNC with "+FULLRESYNC <new replid> <offset>" and the "$EOF:<mark>"
// header of the diskless framing. The caller writes the RDB bytes through
// the returned *Sync and calls Finish, which writes the 40-byte end mark:
// a replica that never gets the mark never loads the payload, so a caller
// that finds the data damaged before Finish only has to Close.
//
// While the payload is written and loaded, the replica sends newlines and
// REPLCONF ACKs; a goroutine owned by the Sync reads and discards them
// (Close stops it and waits for it). No command stream follows the RDB:
// the caller detaches the server (REPLICAOF NO ONE) once it loaded.
package primary
