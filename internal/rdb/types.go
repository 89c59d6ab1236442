package rdb

import (
	"errors"
	"fmt"
)

// Type is an RDB object type byte (0–26).
type Type byte

// Object type bytes, as in Redis's rdb.h.
const (
	TypeString              Type = 0
	TypeList                Type = 1
	TypeSet                 Type = 2
	TypeZSet                Type = 3
	TypeHash                Type = 4
	TypeZSet2               Type = 5
	TypeModulePreGA         Type = 6
	TypeModule2             Type = 7
	TypeHashZipmap          Type = 9
	TypeListZiplist         Type = 10
	TypeSetIntset           Type = 11
	TypeZSetZiplist         Type = 12
	TypeHashZiplist         Type = 13
	TypeListQuicklist       Type = 14
	TypeStreamListpacks     Type = 15
	TypeHashListpack        Type = 16
	TypeZSetListpack        Type = 17
	TypeListQuicklist2      Type = 18
	TypeStreamListpacks2    Type = 19
	TypeSetListpack         Type = 20
	TypeStreamListpacks3    Type = 21
	TypeHashMetadataPreGA   Type = 22
	TypeHashListpackExPreGA Type = 23
	TypeHashMetadata        Type = 24
	TypeHashListpackEx      Type = 25
	TypeStreamListpacks4    Type = 26 // Redis 8.6 (RDB 13): type 21 plus the IDMP (idempotent producer) state

	// TypeValkeyHash2 is Valkey's RDB_TYPE_HASH_2 (a hash with field
	// TTLs, Valkey 9.0, RDB 80): byte 22 in Valkey's numbering, where Redis
	// gives 22 another meaning. Inside this package and its callers a
	// Valkey type is told apart by the high bit; Wire gives the byte.
	TypeValkeyHash2 Type = valkeyTypeBit | 22
)

// valkeyTypeBit marks the Types that are Valkey's reuse of a number Redis
// gives another meaning (22–243 under Valkey's "VALKEY" magic, or in a
// DUMP payload of version 80 and up).
const valkeyTypeBit = 0x80

// Wire is the type byte as written in the file or payload.
func (t Type) Wire() byte { return byte(t) &^ valkeyTypeBit }

// Valkey reports whether t is one of Valkey's own type numbers.
func (t Type) Valkey() bool { return t&valkeyTypeBit != 0 && t < 0xF0 }

// TypeOf maps a type byte read from a file or payload in Valkey's
// numbering (valkey) or Redis's to its Type; ok is false when the byte is
// no object type there.
func TypeOf(b byte, valkey bool) (Type, bool) {
	t := Type(b)
	if valkey && b >= 22 && b <= 243 {
		t = Type(b) | valkeyTypeBit
	}
	if b >= valkeyTypeBit {
		return 0, false
	}
	_, ok := KindOf(t)
	return t, ok
}

// ValkeyNumbering reports whether an RDB of version v uses Valkey's type
// numbers (80 and up: Valkey 9's own versions).
func ValkeyNumbering(v int) bool { return v >= MinValkeyVersion }

// Kind is the logical (in-memory) type of a value. Its numeric values are
// the ones DEBUG DIGEST mixes in: string 0, list 1, set 2, zset 3, hash 4,
// module 5, stream 6.
type Kind int

// Logical kinds.
const (
	KindString Kind = 0
	KindList   Kind = 1
	KindSet    Kind = 2
	KindZSet   Kind = 3
	KindHash   Kind = 4
	KindModule Kind = 5
	KindStream Kind = 6
)

// String returns the name Redis's TYPE command uses for k.
func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindList:
		return "list"
	case KindSet:
		return "set"
	case KindZSet:
		return "zset"
	case KindHash:
		return "hash"
	case KindModule:
		return "module"
	case KindStream:
		return "stream"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// RecordKind says what a Record holds.
type RecordKind int

// Record kinds, one per top-level construct of an RDB file.
const (
	RecordAux        RecordKind = iota + 1 // AuxKey, AuxValue
	RecordResizeDB                         // DB, DBSize, ExpiresSize
	RecordSelectDB                         // DB
	RecordFunction                         // FunctionCode (FUNCTION2, or FUNCTION_PRE_GA converted to its code)
	RecordModuleAux                        // Module
	RecordSlotInfo                         // Slot, SlotKeys, SlotExpires
	RecordKey                              // DB, Key, Type, Expire, Idle, Freq, Meta, Value
	RecordSlotImport                       // Valkey 9 (opcode 243 under "VALKEY"): an atomic slot migration in progress; nothing to restore
)

// Record is one top-level item of an RDB file. The byte slices it holds are
// valid only until the next call to Reader.Next.
type Record struct {
	Kind   RecordKind
	Offset int64 // byte offset of the record's first byte: its opcode, or for a key its first EXPIRETIME/IDLE/FREQ opcode, else its type byte

	DB int // the current logical db (RecordKey, RecordSelectDB, RecordResizeDB)

	AuxKey, AuxValue []byte // RecordAux

	DBSize, ExpiresSize uint64 // RecordResizeDB

	FunctionCode []byte // RecordFunction

	Module string // RecordModuleAux, and RecordKey of a module value: the 9-character module name

	Slot, SlotKeys, SlotExpires uint64 // RecordSlotInfo

	Key    []byte // RecordKey
	Type   Type   // RecordKey
	Expire int64  // RecordKey: absolute unix ms, or -1 when the key has no TTL
	Idle   int64  // RecordKey: LRU idle seconds, or -1 when absent
	Freq   int    // RecordKey: LFU counter 0–255, or -1 when absent
	Meta   []byte // RecordKey: the body of a KEY_META opcode before the type byte (Redis 8.6, RDB 13: module metadata classes), or nil
	Value  []byte // RecordKey: the serialized value exactly as in the file, without the type byte; nil when Streamed

	// Streamed (RecordKey) says the value was too big to hold: the Reader
	// decoded it as it arrived, calling the Visitor Options.StreamValues
	// gave for the key, and Value is nil.
	Streamed bool

	valueOff int64 // RecordKey: file offset of Value[0], for errors found later (CheckValues)
}

// ChecksumStatus describes the CRC-64 trailer once the EOF opcode was read.
type ChecksumStatus int

// Checksum states.
const (
	ChecksumUnknown     ChecksumStatus = iota // EOF not reached yet
	ChecksumOK                                // trailer present and equal to the computed CRC
	ChecksumNotComputed                       // trailer is all zero: the writer had rdbchecksum off
	ChecksumAbsent                            // RDB version < 5 has no trailer
)

// String describes s for people.
func (s ChecksumStatus) String() string {
	switch s {
	case ChecksumOK:
		return "ok"
	case ChecksumNotComputed:
		return "not computed (zero trailer)"
	case ChecksumAbsent:
		return "absent (RDB version < 5)"
	}
	return "unknown"
}

// Options bound what a Reader accepts.
type Options struct {
	// MaxValueBytes caps the raw size of one value (and of one string
	// inside it); a larger one is a FormatError. 0 means DefaultMaxValueBytes.
	MaxValueBytes int64

	// SkipValueCheck makes Next walk only the outline of each key's value
	// (the lengths that say where it ends) and skip the deep check of its
	// contents: packed encodings, LZF data, duplicate members. It is for a
	// caller that runs Decode on the Value of every RecordKey anyway, since
	// Decode checks exactly what Next then skipped; damage inside a value is
	// then reported by Decode (its FormatError offsets are relative to the
	// value), everything else still by Next.
	SkipValueCheck bool

	// StreamValues, when set, keeps a big value from being held whole.
	// Once the bytes of a Piecewise value (a list, set, zset or hash
	// stored element by element, a quicklist, a stream) read so far pass
	// StreamAbove, the Reader calls StreamValues with the key's record
	// (everything but Value) and decodes the rest of the value piece by
	// piece as it arrives (each element, quicklist node or stream node),
	// checking it fully and calling the returned Visitor (nil only checks)
	// for every element, in order; Next then returns the record with
	// Streamed set and no Value. Memory is then bounded by the read buffer,
	// StreamAbove and the largest single piece, plus 8 bytes per member of
	// a streamed set, zset or hash for the duplicate check. A duplicate in
	// a streamed value is found by a 64-bit hash match alone (the value is
	// gone by then): a valid value of n members is refused with a
	// probability of about n²/2⁶⁵. An error StreamValues or the Visitor
	// returns stops Next and is returned as is.
	StreamValues func(rec *Record) (*Visitor, error)

	// StreamAbove is the size from which StreamValues applies; 0 means
	// DefaultStreamAbove.
	StreamAbove int

	// StreamStrings, with StreamValues, streams a string value (type 0)
	// of more than StreamAbove bytes too (its length, or for an
	// LZF-compressed one its uncompressed length): StreamValues is called
	// once its length was read, and the Visitor's StringPiece gets its
	// bytes as they arrive (LZF is decompressed through an 8 KiB window,
	// the farthest an LZF back reference reaches), and Raw the bytes as
	// in the file. Without it a string is held whole, once. Memory is then
	// bounded by the read buffer and a 64 KiB output window, whatever the
	// string's size; MaxValueBytes still caps it.
	StreamStrings bool
}

// CheckStreamed is an Options.StreamValues for a reader that only checks:
// streamed values are checked as fully as the others, and visited by no one.
func CheckStreamed(*Record) (*Visitor, error) { return nil, nil }

// DefaultStreamAbove is the default Options.StreamAbove.
const DefaultStreamAbove = 1 << 20

// DefaultMaxValueBytes is the default cap on one serialized value.
const DefaultMaxValueBytes = 1 << 30

// ErrTruncated is wrapped by a FormatError when the input ends early.
var ErrTruncated = errors.New("unexpected end of file")

// ErrChecksum is wrapped by a FormatError when the CRC-64 trailer does not match.
var ErrChecksum = errors.New("checksum mismatch")

// FormatError reports damaged or unsupported RDB data: where it is and why.
type FormatError struct {
	Offset int64  // byte offset in the file (or payload) where the problem was found
	Key    []byte // the key being read, when known
	Type   Type   // the object type being read, when Key is set
	Err    error  // the reason
}

// Error describes the problem with its offset and, when known, the key.
func (e *FormatError) Error() string {
	if e.Key != nil {
		return fmt.Sprintf("offset %d: key %q (type %d): %v", e.Offset, e.Key, e.Type, e.Err)
	}
	return fmt.Sprintf("offset %d: %v", e.Offset, e.Err)
}

// Unwrap returns the reason, so errors.Is finds ErrTruncated and ErrChecksum.
func (e *FormatError) Unwrap() error { return e.Err }

// VerificationFailed marks a FormatError as a failed verification (exit code 3).
func (e *FormatError) VerificationFailed() bool { return true }
