// Package resp reads and writes the Redis serialization protocol (RESP2, and
// RESP3 replies tolerantly) over buffered streams. It opens no sockets.
//
// A Reader parses replies (ReadValue) and commands: ReadCommand for a
// stream (the replication stream; arguments the caller may keep) and
// ReadRecord for a log (AOF files, the shipped log: AOF annotations, byte
// offsets and lines, raw bytes and torn-tail errors as Options ask; one
// reused buffer). Both are the same parser with the same limits. It never
// trusts a length from the stream: bulk strings and arrays are limited by
// Options and grow as their bytes arrive, so a hostile header such as
// "$4000000000\r\n" costs nothing until the bytes are really sent.
//
// ReadCommand and ReadRecord accept only the array form of commands ("*N\r\n$L\r\n...").
// That is the only form Redis uses for the replication stream and for AOF
// files; inline commands ("SET a b\r\n") are rejected with an error.
//
// The Writer and AppendCommand encode commands as arrays of bulk strings,
// for pipelined writes without per-command allocations.
package resp
