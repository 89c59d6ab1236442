// Package rdb reads and writes Redis RDB files as a stream: every version
// from 1 to 13 plus Valkey's "VALKEY" magic (80 and up), every opcode and
// every object type 0–26 (type 6, MODULE_PRE_GA, is refused). RDB 13
// (Redis 8.6) adds type 26, a stream with its IDMP state, and the KEY_META
// opcode (module key metadata before a key's type byte, in files and DUMP
// payloads: Record.Meta); under Valkey's magic byte 243 is SLOT_IMPORT
// instead (RecordSlotImport). Valkey's type 23 and opcode 242 (RDB 81) are
// refused: their layout was not available to check.
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
// A value too big to hold (Options.StreamValues, from StreamAbove bytes
// on) is decoded as it arrives and handed to a Visitor piece by piece:
// aggregates element by element, and with Options.StreamStrings a string
// value byte range by byte range (Visitor.StringPiece, LZF decompressed
// through an 8 KiB window); Visitor.Raw gets the value's bytes as in the
// file, for a caller that copies it. The Record then has Streamed set and
// no Value. Memory is then bounded by the read buffer whatever the value's
// size; a caller that does not opt in gets every value whole, as before.
//
// Each key Record carries the value's serialized bytes exactly as in the
// file, so DumpPayload builds the DUMP/RESTORE payload without re-encoding,
// and Decode gives a streaming view of any value (list elements, set
// members, zset pairs, hash fields with TTLs, stream entries and groups).
//
// Writer builds RDB files from raw values; the Encode*, Build* and Append*
// helpers produce values and packed blobs for it. The fixtures under
// testdata/ (formats Redis 7.0 cannot write: RDB 2, 6, 9, 10, 11, 12, 13,
// Valkey 80 and 81, zero checksum) are built byte by byte with Writer by the generator
// below and checked by TestReader_Fixtures.
package rdb

//go:generate go test -run TestReader_Fixtures -update
