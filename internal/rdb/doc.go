// Package rdb reads Redis RDB files as a stream: every version from 1 to 12
// plus Valkey's "VALKEY" magic, every opcode and every object type 0–25.
//
// A Reader validates as it goes (CRC-64 trailer, the structure of every
// packed blob, lengths never trusted beyond the bytes left) and hands out one
// Record at a time, so memory is bounded by the largest single value and by
// Options.MaxValueBytes, never by the file. Each key Record carries the raw
// serialized value bytes, so a caller can build a DUMP payload for RESTORE
// without re-encoding (see DumpPayload), and Decode gives a streaming decoded
// view of any value (list elements, set members, zset pairs, hash fields,
// stream entries).
package rdb
