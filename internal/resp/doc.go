// Package resp reads and writes the Redis serialization protocol (RESP2, and
// RESP3 replies tolerantly) over buffered streams. It opens no sockets.
//
// A Reader parses replies (ReadValue) and commands (ReadCommand). It never
// trusts a length from the stream: bulk strings and arrays are limited by
// Options and grow as their bytes arrive, so a hostile header such as
// "$4000000000\r\n" costs nothing until the bytes are really sent.
//
// ReadCommand accepts only the array form of commands ("*N\r\n$L\r\n...").
// That is the only form Redis uses for the replication stream and for AOF
// files; inline commands ("SET a b\r\n") are rejected with an error.
//
// The Writer and AppendCommand encode commands as arrays of bulk strings,
// for pipelined writes without per-command allocations.
package resp
