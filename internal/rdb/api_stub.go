package rdb

// This file lists the API the rest of redback codes against. Its bodies are
// placeholders, replaced by the real implementation.

import "io"

// Reader reads an RDB stream one Record at a time.
type Reader struct{}

// NewReader reads and checks the header ("REDIS" + 4 digits, or "VALKEY" +
// digits) and returns a Reader positioned at the first record.
func NewReader(r io.Reader, opts Options) (*Reader, error) { panic("TODO") }

// Version is the RDB version from the header (80 and up for Valkey's magic).
func (r *Reader) Version() int { panic("TODO") }

// Next returns the next record. After the EOF opcode and the checksum were
// read and verified it returns io.EOF; damage is a *FormatError.
func (r *Reader) Next() (*Record, error) { panic("TODO") }

// Offset is the number of bytes consumed so far.
func (r *Reader) Offset() int64 { panic("TODO") }

// Checksum reports the CRC-64 trailer status; valid after Next returned io.EOF.
func (r *Reader) Checksum() ChecksumStatus { panic("TODO") }

// KindOf maps an object type byte to its logical kind.
func KindOf(t Type) (Kind, bool) { panic("TODO") }

// Visitor receives the elements of a decoded value. Nil callbacks are
// skipped. Byte slices are valid only during the call. Returning an error
// stops the walk and Decode returns it.
type Visitor struct {
	String      func(v []byte) error                        // KindString
	ListElem    func(v []byte) error                        // KindList, head to tail
	SetMember   func(m []byte) error                        // KindSet
	ZSetMember  func(m []byte, score float64) error         // KindZSet
	HashField   func(f, v []byte, expireAt int64) error     // KindHash; expireAt is absolute unix ms, 0 = no field TTL
	StreamEntry func(ms, seq uint64, fields [][]byte) error // KindStream: live entries in ID order, fields as f1 v1 f2 v2 ...
	Stream      func(s *StreamInfo) error                   // KindStream: metadata, groups, PELs, consumers (after the entries)
}

// StreamInfo is a stream's metadata beyond its entries.
type StreamInfo struct {
	Length          uint64
	LastID, FirstID StreamID
	MaxDeletedID    StreamID
	EntriesAdded    uint64
	Groups          []StreamGroup
}

// StreamID is a stream entry ID.
type StreamID struct{ Ms, Seq uint64 }

// StreamGroup is one consumer group.
type StreamGroup struct {
	Name            []byte
	LastDeliveredID StreamID
	EntriesRead     int64 // -1 = unknown
	PEL             []StreamPending
	Consumers       []StreamConsumer
}

// StreamPending is one entry of a group's pending entries list.
type StreamPending struct {
	ID            StreamID
	DeliveryTime  int64 // unix ms
	DeliveryCount uint64
}

// StreamConsumer is one consumer of a group.
type StreamConsumer struct {
	Name       []byte
	SeenTime   int64 // unix ms
	ActiveTime int64 // unix ms (equals SeenTime before type 21)
	PEL        []StreamID
}

// Decode walks the value of type t whose serialized bytes are raw (as in
// Record.Value), checking its structure, and calls v for every element.
func Decode(t Type, raw []byte, v *Visitor) error { panic("TODO") }

// DumpPayload returns the DUMP/RESTORE payload for a value: type byte, raw
// value bytes, the 2-byte little-endian RDB version, then the CRC-64 of all
// that, little-endian.
func DumpPayload(t Type, raw []byte, version uint16) []byte { panic("TODO") }

// CRC64 continues Redis's CRC-64 (Jones) over p, starting from prev (0 to start).
func CRC64(prev uint64, p []byte) uint64 { panic("TODO") }
