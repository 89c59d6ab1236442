// Package rdb reads and writes Redis RDB files as a stream: every version
// from 1 to 12 plus Valkey's "VALKEY" magic (80 and up), every opcode and
// every object type 0–25 (type 6, MODULE_PRE_GA, is refused).
//
// A Reader validates as it goes, like Redis's deep sanitization: the CRC-64
// trailer, the structure of every packed blob (listpack, ziplist, intset,
// zipmap, LZF), quicklist containers, stream nodes and consumer-group PELs,
// and duplicate members or fields. Lengths are never trusted beyond the
// bytes that actually arrive, so memory is bounded by the largest single
// value and by Options.MaxValueBytes, never by the file. Damage is a
// *FormatError naming the offset (and the key, when known); truncation
// wraps ErrTruncated and a CRC mismatch wraps ErrChecksum.
//
// Each key Record carries the value's serialized bytes exactly as in the
// file, so DumpPayload builds the DUMP/RESTORE payload without re-encoding,
// and Decode gives a streaming view of any value (list elements, set
// members, zset pairs, hash fields with TTLs, stream entries and groups).
//
// Writer builds RDB files from raw values; the Encode*, Build* and Append*
// helpers produce values and packed blobs for it. The fixtures under
// testdata/ (formats Redis 7.0 cannot write: RDB 2, 6, 9, 10, 11, 12, Valkey
// 80, zero checksum) are built byte by byte with Writer by the generator
// below and checked by TestReader_Fixtures.
package rdb

//go:generate go test -run TestReader_Fixtures -update
