package rdb

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

	// StringPiece receives a string value streamed by a Reader
	// (Options.StreamStrings): its bytes in order, a piece at a time,
	// decompressed when the file holds it LZF-compressed. String is not
	// called for it.
	StringPiece func(p []byte) error

	// Raw receives a streamed value's serialized bytes as the Reader
	// passes them, in order: together they are what Record.Value would
	// have held (for a compressed string, the LZF data). A caller copying
	// the value to a Writer gives WriteKey a nil value and WriteRaw each
	// piece. Decode never calls it.
	Raw func(p []byte) error
}

// StreamInfo is a stream's metadata beyond its entries. For type 15
// (Redis 5–6.2) EntriesAdded is Length, FirstID the first live entry,
// MaxDeletedID 0-0 and every group's EntriesRead -1.
type StreamInfo struct {
	Length          uint64
	LastID, FirstID StreamID
	MaxDeletedID    StreamID
	EntriesAdded    uint64
	Groups          []StreamGroup
	IDMP            StreamIDMP // type 26 (Redis 8.6) only; zero otherwise
}

// StreamIDMP is the idempotent-producer state of a Redis 8.6 stream
// (XADD ... IDMP, XCFGSET): settings and counts, not the IIDs themselves.
type StreamIDMP struct {
	Duration, MaxSize uint64 // seconds; IIDs kept per producer
	Producers, IIDs   int    // producers tracked; IIDs tracked over all of them
	Added, Duplicates uint64 // iids-added, iids-duplicates counters
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
