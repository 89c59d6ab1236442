package rdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
)

// Opcodes (RDB_OPCODE_*).
const (
	opKeyMeta       = OpKeyMeta
	opSlotInfo      = 0xF4
	opFunction2     = 0xF5
	opFunctionPreGA = 0xF6
	opModuleAux     = 0xF7
	opIdle          = 0xF8
	opFreq          = 0xF9
	opAux           = 0xFA
	opResizeDB      = 0xFB
	opExpireTimeMS  = 0xFC
	opExpireTime    = 0xFD
	opSelectDB      = 0xFE
	opEOF           = 0xFF
)

// OpKeyMeta is Redis's KEY_META opcode (RDB 13, Redis 8.6): module key
// metadata before a key's type byte, in a file and in a DUMP payload.
// Under Valkey's "VALKEY" magic the same byte is SLOT_IMPORT.
const OpKeyMeta = 0xF3

// MaxVersion is the highest Redis RDB version this package reads.
const MaxVersion = 13

// MinValkeyVersion is the lowest version Valkey writes with its "VALKEY" magic.
const MinValkeyVersion = 80

// The read buffer starts small (cheap for small inputs) and doubles up to
// readBufSize while reads keep filling it.
const (
	readBufSize    = 1 << 20
	minReadBufSize = 32 << 10
)

// freeOSAbove is the size of a read buffer (grown for a big value) whose
// memory goes back to the OS as soon as it shrinks.
const freeOSAbove = 64 << 20

// Reader reads an RDB stream one Record at a time, checking the structure
// of every value and the CRC-64 trailer. Memory is bounded by its 1 MiB
// buffer plus the largest single key+value (itself capped by
// Options.MaxValueBytes). A Reader is not safe for concurrent use.
//
// The bytes of the item being read stay in the read buffer from mark on
// (fill keeps them when it moves the buffer, and grows it when an item
// does not fit), so a Record's Value is a slice of the buffer, not a copy.
type Reader struct {
	src    io.Reader
	srcErr error
	buf    []byte
	pos    int
	end    int
	mark   int   // buf[mark:pos] are the captured bytes of the current item
	base   int64 // file offset of buf[0]
	crc    uint64
	crcPos int // buf[crcPos:pos] is not yet in crc

	version int
	valkey  bool
	max     uint64
	skip    bool // Options.SkipValueCheck

	streamFn    func(*Record) (*Visitor, error) // Options.StreamValues
	streamAbove int
	streamStr   bool      // Options.StreamStrings (with StreamValues)
	vis         *Visitor  // the streamed value's Visitor
	lzf         lzfStream // a streamed LZF string's window
	streaming   bool      // the current value is decoded piece by piece
	streamed    int64     // bytes of the current value decoded and dropped
	valStart    int       // where the current value starts, relative to mark

	key []byte
	aux [2][]byte
	fn  []byte
	dec decoder
	rec Record

	db      int
	meta    []byte // the KEY_META body before the current key, when hasMeta
	hasMeta bool
	expire  int64
	idle    int64
	freq    int

	err       error
	status    ChecksumStatus
	zeroReads int
	fullReads int
}

// NewReader reads and checks the header ("REDIS" + 4 digits for versions
// 1–12, or "VALKEY" + 3 digits for versions 80 and up) and returns a Reader
// positioned at the first record.
func NewReader(r io.Reader, opts Options) (*Reader, error) {
	max := opts.MaxValueBytes
	if max <= 0 {
		max = DefaultMaxValueBytes
	}
	rd := &Reader{src: r, buf: make([]byte, minReadBufSize), max: uint64(max), skip: opts.SkipValueCheck, expire: -1, idle: -1, freq: -1,
		streamFn: opts.StreamValues, streamAbove: opts.StreamAbove, streamStr: opts.StreamStrings && opts.StreamValues != nil}
	if rd.streamAbove <= 0 {
		rd.streamAbove = DefaultStreamAbove
	}
	if err := rd.fill(9); err != nil {
		return nil, toFormatError(err, 0, nil, 0)
	}
	h := rd.buf[:9]
	var digits []byte
	switch {
	case string(h[:5]) == "REDIS":
		digits = h[5:9]
	case string(h[:6]) == "VALKEY":
		digits, rd.valkey = h[6:9], true
	default:
		return nil, &FormatError{Offset: 0, Err: fmt.Errorf("not an RDB file: header %q, want \"REDIS\" or \"VALKEY\" and a version", h)}
	}
	v := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, &FormatError{Offset: 0, Err: fmt.Errorf("bad RDB version %q in header", digits)}
		}
		v = v*10 + int(c-'0')
	}
	if rd.valkey && v < MinValkeyVersion || !rd.valkey && (v < 1 || v > MaxVersion) {
		return nil, &FormatError{Offset: 0, Err: fmt.Errorf("unsupported RDB version %d (header %q)", v, h)}
	}
	rd.version = v
	rd.pos = 9
	return rd, nil
}

// Version is the RDB version from the header (80 and up for Valkey's magic).
func (r *Reader) Version() int { return r.version }

// Valkey reports whether the header used Valkey's "VALKEY" magic.
func (r *Reader) Valkey() bool { return r.valkey }

// Offset is the number of bytes consumed so far.
func (r *Reader) Offset() int64 { return r.base + int64(r.pos) }

// Checksum reports the CRC-64 trailer status; valid after Next returned io.EOF.
func (r *Reader) Checksum() ChecksumStatus { return r.status }

// fill makes at least n bytes (n <= len(buf)) available at buf[pos:].
func (r *Reader) fill(n int) error {
	for r.end-r.pos < n {
		if r.srcErr != nil {
			if r.srcErr == io.EOF || errors.Is(r.srcErr, io.ErrUnexpectedEOF) {
				return truncAt(int(r.base)+r.end, n, r.end-r.pos)
			}
			return fmt.Errorf("read rdb at offset %d: %w", r.base+int64(r.end), r.srcErr)
		}
		if s := r.mark; s > 0 {
			// Drop the bytes before the current item (their CRC first);
			// a buffer grown for a big item goes back to readBufSize once
			// the item is done.
			size := len(r.buf)
			if size > readBufSize && r.end-s <= readBufSize/2 {
				size = readBufSize
			}
			big := size < len(r.buf) && len(r.buf) >= freeOSAbove
			r.move(size)
			if big {
				// The value is done with: give its memory back now, before
				// garbage up to the GC's goal (twice the heap it saw) grows
				// in it as the next values are read.
				debug.FreeOSMemory()
			}
		}
		if r.end == len(r.buf) || len(r.buf)-r.pos < n || len(r.buf) < readBufSize && r.fullReads >= 2 {
			// Full of the current item, too small for n, or reads keep
			// filling it: double it.
			nb := make([]byte, max(2*len(r.buf), r.pos+n))
			copy(nb, r.buf[:r.end])
			r.buf, r.fullReads = nb, 0
		}
		k, err := r.src.Read(r.buf[r.end:])
		if r.end+k == len(r.buf) {
			r.fullReads++
		}
		r.end += k
		switch {
		case err != nil:
			r.srcErr = err
		case k == 0:
			r.zeroReads++
			if r.zeroReads >= 100 {
				r.srcErr = io.ErrNoProgress
			}
		default:
			r.zeroReads = 0
		}
	}
	return nil
}

// move drops the bytes before mark (their CRC first) into a buffer of
// size bytes (the same one when size is its length).
func (r *Reader) move(size int) {
	r.crc = CRC64(r.crc, r.buf[r.crcPos:r.pos])
	nb := r.buf
	if size != len(r.buf) {
		nb = make([]byte, size)
	}
	copy(nb, r.buf[r.mark:r.end])
	r.buf = nb
	r.base += int64(r.mark)
	r.end -= r.mark
	r.pos -= r.mark
	r.mark = 0
	r.crcPos = r.pos
}

// rawByte reads one byte without capturing it.
func (r *Reader) rawByte() (byte, error) {
	if r.pos >= r.end {
		if err := r.fill(1); err != nil {
			return 0, err
		}
	}
	b := r.buf[r.pos]
	r.pos++
	return b, nil
}

// fixed reads and captures n (<= 9) bytes; the returned slice is valid
// until the next read.
func (r *Reader) fixed(n int) ([]byte, error) {
	if r.end-r.pos < n {
		if err := r.fill(n); err != nil {
			return nil, err
		}
	}
	b := r.buf[r.pos : r.pos+n]
	r.pos += n
	return b, nil
}

// captured returns the bytes captured for the current item so far; valid
// until the next read.
func (r *Reader) captured() []byte { return r.buf[r.mark:r.pos] }

// copyN captures n bytes, growing the buffer only as bytes arrive.
func (r *Reader) copyN(n uint64) error {
	if n > r.max-min(uint64(r.pos-r.mark), r.max) {
		return errAt(int(r.Offset()), "string of %d bytes exceeds MaxValueBytes %d", n, r.max)
	}
	if n <= uint64(r.end-r.pos) {
		r.pos += int(n)
		return nil
	}
	if need := uint64(r.pos-r.mark) + n; n >= readBufSize && need > uint64(len(r.buf)) {
		// A big string: make room for the whole item once instead of
		// doubling the buffer (up to twice its size) as it arrives.
		r.move(int(need) + minReadBufSize)
	}
	want, have := n, uint64(0)
	for n > 0 {
		if r.pos == r.end {
			if err := r.fill(1); err != nil {
				return r.truncated(err, want, have)
			}
		}
		k := min(n, uint64(r.end-r.pos))
		r.pos += int(k)
		n -= k
		have += k
	}
	return nil
}

// truncated turns a truncation fill found into one at the current offset
// of a string of want bytes of which have arrived.
func (r *Reader) truncated(err error, want, have uint64) error {
	var pe *posError
	if errors.As(err, &pe) && errors.Is(err, ErrTruncated) {
		return truncAt(int(r.Offset()), int(min(want, math.MaxInt32)), int(min(have, math.MaxInt32)))
	}
	return err
}

// The capture methods read the outline of a value (lengths, strings,
// counts) from the stream; every byte they read is captured raw for the
// record, and Decode checks the whole value later.

// at is the offset of the next byte, for errors.
func (r *Reader) at() int { return int(r.Offset()) }

// captureLen reads and captures a length; enc reports the 11xxxxxx string
// forms.
func (r *Reader) captureLen() (n uint64, enc bool, err error) {
	off := r.Offset()
	b, err := r.fixed(1)
	if err != nil {
		return 0, false, err
	}
	var buf [9]byte
	buf[0] = b[0]
	size := lenSize(buf[0])
	if size == 0 {
		return 0, false, errAt(int(off), "bad length byte 0x%02x", buf[0])
	}
	if size > 1 {
		b, err := r.fixed(size - 1)
		if err != nil {
			return 0, false, err
		}
		copy(buf[1:], b)
	}
	n, enc = parseLen(buf[:size])
	return n, enc, nil
}

// captureLength reads a plain length.
func (r *Reader) captureLength(what string) (uint64, error) {
	off := r.Offset()
	n, enc, err := r.captureLen()
	if err != nil {
		return 0, err
	}
	if enc {
		return 0, errAt(int(off), "%s: string encoding 0x%02x where a length is expected", what, 0xC0|n)
	}
	return n, nil
}

// captureStr reads and captures an RDB string.
func (r *Reader) captureStr() error { return r.captureString(false) }

// captureString reads and captures an RDB string; top (a string value
// under Options.StreamStrings) streams one longer than StreamAbove instead.
func (r *Reader) captureString(top bool) error {
	off := r.Offset()
	n, enc, err := r.captureLen()
	if err != nil {
		return err
	}
	if !enc {
		if top && n > uint64(r.streamAbove) {
			return r.streamRaw(n)
		}
		return r.copyN(n)
	}
	switch n {
	case 0, 1:
		_, err = r.fixed(int(n) + 1)
	case 2:
		_, err = r.fixed(4)
	case 3:
		clen, err := r.captureLength("LZF compressed length")
		if err != nil {
			return err
		}
		ulen, err := r.captureLength("LZF uncompressed length")
		if err != nil {
			return err
		}
		if ulen > r.max {
			return errAt(int(off), "LZF string of %d bytes exceeds MaxValueBytes %d", ulen, r.max)
		}
		if top && ulen > uint64(r.streamAbove) {
			return r.streamLZF(off, clen, ulen)
		}
		return r.copyN(clen)
	default:
		return errAt(int(off), "unknown string encoding 0xc%x", n)
	}
	return err
}

// captureValue captures a value of type t by walking its outline; the full
// check is Decode's, run on the captured bytes.
func (r *Reader) captureValue(t Type) error {
	switch t {
	case TypeString:
		return r.captureString(r.streamStr)
	case TypeHashZipmap, TypeListZiplist, TypeSetIntset, TypeZSetZiplist, TypeHashZiplist,
		TypeHashListpack, TypeZSetListpack, TypeSetListpack, TypeHashListpackExPreGA:
		return r.captureStr()
	case TypeHashListpackEx:
		if _, err := r.fixed(8); err != nil {
			return err
		}
		return r.captureStr()
	case TypeList, TypeSet, TypeListQuicklist:
		return r.capturePieces(t, func() error { return r.captureStr() })
	case TypeHash:
		return r.capturePieces(t, r.captureStrPair)
	case TypeZSet:
		return r.capturePieces(t, func() error {
			if err := r.captureStr(); err != nil {
				return err
			}
			b, err := r.fixed(1)
			if err != nil || b[0] >= 253 {
				return err
			}
			return r.copyN(uint64(b[0]))
		})
	case TypeZSet2:
		return r.capturePieces(t, func() error {
			if err := r.captureStr(); err != nil {
				return err
			}
			_, err := r.fixed(8)
			return err
		})
	case TypeModulePreGA:
		return errAt(int(r.Offset()), "module value of type 6 (MODULE_PRE_GA, Redis 4.0 release candidates) is not supported")
	case TypeModule2:
		if _, err := r.captureLength("module id"); err != nil {
			return err
		}
		return r.captureModuleTags()
	case TypeListQuicklist2:
		return r.capturePieces(t, func() error {
			if _, err := r.captureLength("quicklist container"); err != nil {
				return err
			}
			return r.captureStr()
		})
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3, TypeStreamListpacks4:
		return r.captureStream(t)
	case TypeHashMetadata, TypeHashMetadataPreGA:
		if t == TypeHashMetadata {
			if _, err := r.fixed(8); err != nil {
				return err
			}
		}
		return r.capturePieces(t, func() error {
			if _, err := r.captureLength("field TTL"); err != nil {
				return err
			}
			return r.captureStrPair()
		})
	case TypeValkeyHash2:
		return r.capturePieces(t, func() error {
			if err := r.captureStrPair(); err != nil {
				return err
			}
			_, err := r.fixed(8)
			return err
		})
	}
	return errAt(int(r.Offset()), "unknown object type %d", t)
}

func (r *Reader) captureStrPair() error {
	if err := r.captureStr(); err != nil {
		return err
	}
	return r.captureStr()
}

// captureRepeat reads a count and runs one that many times. Each element takes
// at least one byte, so a hostile count ends at the end of the input or at
// MaxValueBytes.
func (r *Reader) captureRepeat(what string, one func() error) error {
	return r.captureCount(what, 0, false, one)
}

// capturePieces reads the count of pieces of a Piecewise value of type t
// and runs one that many times, like captureRepeat. With
// Options.StreamValues, once the value has taken more than StreamAbove
// bytes, it decodes what was captured and then every further piece as
// soon as it was read, and drops its bytes.
func (r *Reader) capturePieces(t Type, one func() error) error {
	what, _ := pieceCount(t)
	return r.captureCount(what, t, true, one)
}

// captureCount is captureRepeat, and with pieces capturePieces of a value
// of type t.
func (r *Reader) captureCount(what string, t Type, pieces bool, one func() error) error {
	n, err := r.captureLength(what)
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		if err := one(); err != nil {
			return err
		}
		switch {
		case !pieces:
		case r.streaming:
			if err := r.streamPiece(); err != nil {
				return err
			}
		case r.streamFn != nil && r.pos-r.mark-r.valStart > r.streamAbove:
			if err := r.startStream(t); err != nil {
				return err
			}
		}
		if uint64(r.streamed)+uint64(r.pos-r.mark) > r.max {
			return errAt(int(r.Offset()), "value exceeds MaxValueBytes %d", r.max)
		}
	}
	return nil
}

// beginStream hands the key (a value of type t) to Options.StreamValues
// and keeps the Visitor it returns (an empty one for nil) in r.vis.
func (r *Reader) beginStream(t Type) (*Visitor, error) {
	rec := &r.rec
	*rec = Record{Kind: RecordKey, Offset: rec.Offset, DB: r.db, Key: r.key, Type: t, Expire: r.expire, Idle: r.idle, Freq: r.freq}
	if r.hasMeta {
		rec.Meta = r.meta
	}
	v, err := r.streamFn(rec)
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = &Visitor{}
	}
	r.vis = v
	return v, nil
}

// passRaw hands b, serialized bytes of the streamed value, to its
// Visitor's Raw.
func (r *Reader) passRaw(b []byte) error {
	if r.vis.Raw == nil {
		return nil
	}
	return r.vis.Raw(b)
}

// startStream hands the key to Options.StreamValues, decodes the part of
// its value captured so far (the head and whole pieces) and drops it.
func (r *Reader) startStream(t Type) error {
	v, err := r.beginStream(t)
	if err != nil {
		return err
	}
	d := &r.dec
	d.dups.reset(true)
	val := r.captured()[r.valStart:]
	off := r.Offset() - int64(len(val))
	d.b, d.p = val, 0
	if _, err := d.piecesHead(t, v, true); err != nil {
		return toFormatError(err, off, r.key, t)
	}
	for d.p < len(d.b) {
		if err := d.piece(); err != nil {
			return toFormatError(err, off, r.key, t)
		}
	}
	if err := r.passRaw(val); err != nil {
		return err
	}
	r.streaming, r.streamed = true, int64(len(val))
	r.mark, r.valStart = r.pos, 0
	return nil
}

// streamPiece decodes the piece just captured and drops it.
func (r *Reader) streamPiece() error {
	d := &r.dec
	b := r.captured()
	d.b, d.p = b, 0
	if err := d.piece(); err != nil {
		return toFormatError(err, r.Offset()-int64(len(b)), r.key, d.pc.t)
	}
	if err := r.passRaw(b); err != nil {
		return err
	}
	r.streamed += int64(len(b))
	r.mark = r.pos
	return nil
}

// endStream decodes the rest of a streamed value (a stream's metadata
// and groups) and checks its members for duplicates.
func (r *Reader) endStream(t Type) error {
	d := &r.dec
	b := r.captured()
	off := r.Offset() - int64(len(b))
	d.b, d.p = b, 0
	if err := d.piecesTail(); err != nil {
		return toFormatError(err, off, r.key, t)
	}
	if d.p != len(d.b) {
		return toFormatError(errAt(d.p, "%d unexpected bytes after the value", len(d.b)-d.p), off, r.key, t)
	}
	d.b = nil
	if err := r.passRaw(b); err != nil {
		return err
	}
	_, dup, err := d.dups.candidate()
	d.dups.reset(false)
	if err != nil {
		return fmt.Errorf("key %q: duplicate check: %w", r.key, err)
	}
	if dup {
		return toFormatError(errAt(0, "%s (two members hash alike; the value was too big to hold for a byte comparison)", dupWhat(t)), off, r.key, t)
	}
	return nil
}

func (r *Reader) captureModuleTags() error {
	return walkModuleTags(r.at, r.captureLength, r.fixed, r.captureStr)
}

func (r *Reader) captureLengths(n int, what string) error {
	for range n {
		if _, err := r.captureLength(what); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reader) captureStream(t Type) error {
	if err := r.capturePieces(t, r.captureStrPair); err != nil {
		return err
	}
	if err := r.captureStreamMetaGroups(t); err != nil {
		return err
	}
	if t != TypeStreamListpacks4 {
		return nil
	}
	// IDMP: duration, max entries, the producers (pid, then its IIDs
	// each with the entry ID as two lengths), iids added, iids duplicates.
	if err := r.captureLengths(2, "stream IDMP settings"); err != nil {
		return err
	}
	if err := r.captureRepeat("stream IDMP producer count", func() error {
		if err := r.captureStr(); err != nil {
			return err
		}
		return r.captureRepeat("stream IDMP entry count", func() error {
			if err := r.captureStr(); err != nil {
				return err
			}
			return r.captureLengths(2, "stream IDMP entry id")
		})
	}); err != nil {
		return err
	}
	return r.captureLengths(2, "stream IDMP counters")
}

func (r *Reader) captureStreamMetaGroups(t Type) error {
	meta := 3
	if t != TypeStreamListpacks {
		meta = 8
	}
	if err := r.captureLengths(meta, "stream metadata"); err != nil {
		return err
	}
	return r.captureRepeat("stream group count", func() error {
		if err := r.captureStr(); err != nil {
			return err
		}
		n := 2
		if t != TypeStreamListpacks {
			n = 3
		}
		if err := r.captureLengths(n, "group metadata"); err != nil {
			return err
		}
		if err := r.captureRepeat("group PEL size", func() error {
			if err := r.copyN(24); err != nil {
				return err
			}
			_, err := r.captureLength("PEL delivery count")
			return err
		}); err != nil {
			return err
		}
		return r.captureRepeat("consumer count", func() error {
			if err := r.captureStr(); err != nil {
				return err
			}
			times := uint64(8)
			if t >= TypeStreamListpacks3 {
				times = 16
			}
			if err := r.copyN(times); err != nil {
				return err
			}
			return r.captureRepeat("consumer PEL size", func() error { return r.copyN(16) })
		})
	})
}

// decodeStrs decodes the strings at the start of the captured bytes into dsts.
func (r *Reader) decodeStrs(dsts ...*[]byte) error {
	r.dec.b, r.dec.p = r.captured(), 0
	for _, dst := range dsts {
		s, _, _, _, err := r.dec.str()
		if err != nil {
			return err
		}
		*dst = append((*dst)[:0], s...)
	}
	return nil
}

// Next returns the next record. After the EOF opcode and the checksum were
// read and verified it returns io.EOF; damage is a *FormatError (wrapping
// ErrTruncated or ErrChecksum where that is the reason), and a read error
// of the underlying reader is returned wrapped. Once Next returned an
// error it returns the same error again.
func (r *Reader) Next() (*Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (*Record, error) {
	prefix := int64(-1) // offset of the first EXPIRETIME/IDLE/FREQ before a key
	for {
		off := r.Offset()
		r.mark = r.pos
		op, err := r.rawByte()
		if err != nil {
			return nil, toFormatError(err, 0, nil, 0)
		}
		r.mark = r.pos
		rec := &r.rec
		*rec = Record{Offset: off, DB: r.db}
		switch op {
		case opExpireTimeMS, opExpireTime, opIdle, opFreq:
			if prefix < 0 {
				prefix = off
			}
		}
		var keyRec bool
		switch op {
		case opEOF:
			return nil, r.finish(off)
		case opAux:
			if err = r.captureStrPair(); err == nil {
				if err = r.decodeStrs(&r.aux[0], &r.aux[1]); err != nil {
					err = toFormatError(err, off+1, nil, 0)
				}
			}
			rec.Kind, rec.AuxKey, rec.AuxValue = RecordAux, r.aux[0], r.aux[1]
		case opResizeDB:
			rec.Kind = RecordResizeDB
			if rec.DBSize, err = r.captureLength("RESIZEDB db size"); err == nil {
				rec.ExpiresSize, err = r.captureLength("RESIZEDB expires size")
			}
		case opExpireTimeMS:
			var b []byte
			if b, err = r.fixed(8); err == nil {
				r.expire = int64(binary.LittleEndian.Uint64(b))
				continue
			}
		case opExpireTime:
			var b []byte
			if b, err = r.fixed(4); err == nil {
				r.expire = int64(int32(binary.LittleEndian.Uint32(b))) * 1000
				continue
			}
		case opSelectDB:
			var db uint64
			if db, err = r.captureLength("SELECTDB db id"); err == nil {
				if db > math.MaxInt32 {
					err = errAt(int(off+1), "SELECTDB db id %d out of range", db)
				} else {
					r.db = int(db)
					rec.Kind, rec.DB = RecordSelectDB, r.db
				}
			}
		case opIdle:
			var idle uint64
			if idle, err = r.captureLength("IDLE seconds"); err == nil {
				r.idle = int64(min(idle, math.MaxInt64))
				continue
			}
		case opFreq:
			var b []byte
			if b, err = r.fixed(1); err == nil {
				r.freq = int(b[0])
				continue
			}
		case opModuleAux:
			var id, whenOp uint64
			if id, err = r.captureLength("module aux id"); err != nil {
				break
			}
			opOff := r.Offset()
			if whenOp, err = r.captureLength("module aux when opcode"); err != nil {
				break
			}
			if whenOp != moduleOpUInt {
				err = errAt(int(opOff), "module aux %s: when opcode %d, want %d", ModuleName(id), whenOp, moduleOpUInt)
				break
			}
			if _, err = r.captureLength("module aux when"); err != nil {
				break
			}
			err = r.captureModuleTags()
			rec.Kind, rec.Module = RecordModuleAux, ModuleName(id)
		case opFunction2:
			if err = r.captureStr(); err == nil {
				if err = r.decodeStrs(&r.fn); err != nil {
					err = toFormatError(err, off+1, nil, 0)
				}
			}
			rec.Kind, rec.FunctionCode = RecordFunction, r.fn
		case opFunctionPreGA:
			err = r.functionPreGA(off)
			rec.Kind, rec.FunctionCode = RecordFunction, r.fn
		case opKeyMeta:
			if r.valkey {
				err = r.slotImport()
				rec.Kind = RecordSlotImport
				break
			}
			if prefix < 0 {
				prefix = off
			}
			if err = r.captureKeyMeta(); err == nil {
				r.meta = append(r.meta[:0], r.captured()...)
				r.hasMeta = true
				continue
			}
		case opSlotInfo:
			rec.Kind = RecordSlotInfo
			if rec.Slot, err = r.captureLength("SLOT_INFO slot"); err == nil {
				if rec.SlotKeys, err = r.captureLength("SLOT_INFO keys"); err == nil {
					rec.SlotExpires, err = r.captureLength("SLOT_INFO expires")
				}
			}
		default:
			t, ok := TypeOf(op, r.valkey)
			if !ok {
				if r.valkey {
					return nil, &FormatError{Offset: off, Err: fmt.Errorf("unknown opcode or object type 0x%02x (%d) in Valkey's numbering (RDB %d): redback reads Valkey's formats up to type 22 and opcodes 243-255", op, op, r.version)}
				}
				return nil, &FormatError{Offset: off, Err: fmt.Errorf("unknown opcode or object type 0x%02x", op)}
			}
			keyRec = true
			err = r.keyRecord(rec, t)
			if prefix >= 0 {
				rec.Offset = prefix
			}
		}
		if err != nil {
			if keyRec {
				t, _ := TypeOf(op, r.valkey)
				return nil, toFormatError(err, 0, r.key, t)
			}
			return nil, toFormatError(err, 0, nil, 0)
		}
		return rec, nil
	}
}

// captureKeyMeta captures the body of a KEY_META opcode (Redis 8.6, RDB 13):
// the class count, then per class its 4-byte spec and the module-typed
// values the class saved, ending with the module EOF tag (rdb.c,
// rdbSaveKeyMetadata).
func (r *Reader) captureKeyMeta() error {
	return r.captureRepeat("key metadata class count", func() error {
		if _, err := r.fixed(4); err != nil {
			return err
		}
		return r.captureModuleTags()
	})
}

// slotImport reads Valkey 9's SLOT_IMPORT (an atomic slot migration in
// progress on a cluster node): the job name, then a count of slot ranges,
// each a start and an end.
func (r *Reader) slotImport() error {
	if err := r.captureStr(); err != nil {
		return err
	}
	return r.captureRepeat("slot import range count", func() error { return r.captureLengths(2, "slot import range") })
}

func (r *Reader) functionPreGA(off int64) error {
	for range 2 { // name, engine
		if err := r.captureStr(); err != nil {
			return err
		}
	}
	hasDesc, err := r.captureLength("function description flag")
	if err != nil {
		return err
	}
	if hasDesc != 0 {
		if err := r.captureStr(); err != nil {
			return err
		}
	}
	codeStart := r.pos - r.mark
	if err := r.captureStr(); err != nil {
		return err
	}
	r.dec.b, r.dec.p = r.captured(), codeStart
	s, _, _, _, err := r.dec.str()
	if err != nil {
		return toFormatError(err, off+1, nil, 0)
	}
	r.fn = append(r.fn[:0], s...)
	return nil
}

func (r *Reader) keyRecord(rec *Record, t Type) error {
	r.key = r.key[:0]
	start := r.Offset()
	if err := r.captureStr(); err != nil {
		return err
	}
	if err := r.decodeStrs(&r.key); err != nil {
		return toFormatError(err, start, nil, 0)
	}
	r.valStart = r.pos - r.mark
	r.streaming, r.streamed = false, 0
	valOff := r.Offset()
	if err := r.captureValue(t); err != nil {
		return err
	}
	if r.streaming {
		r.streaming, r.streamed = false, 0
		if t != TypeString { // a string was streamed to its end
			if err := r.endStream(t); err != nil {
				return err
			}
		}
		r.vis = nil
		rec.Kind, rec.Key, rec.Type, rec.Value, rec.Streamed = RecordKey, r.key, t, nil, true
		rec.Expire, rec.Idle, rec.Freq = r.expire, r.idle, r.freq
		if r.hasMeta {
			rec.Meta, r.hasMeta = r.meta, false
		}
		r.expire, r.idle, r.freq = -1, -1, -1
		return nil
	}
	val := r.captured()[r.valStart:]
	if !r.skip {
		err := r.dec.decode(t, val, nil)
		r.dec.b = nil
		if err != nil {
			return toFormatError(err, valOff, r.key, t)
		}
	}
	rec.Kind = RecordKey
	rec.Key, rec.Type, rec.Value, rec.valueOff = r.key, t, val, valOff
	rec.Expire, rec.Idle, rec.Freq = r.expire, r.idle, r.freq
	if r.hasMeta {
		rec.Meta, r.hasMeta = r.meta, false
	}
	if t == TypeModule2 {
		r.dec.b, r.dec.p = val, 0
		id, _ := r.dec.length("module id")
		rec.Module = ModuleName(id)
	}
	r.expire, r.idle, r.freq = -1, -1, -1
	return nil
}

func checksumErr(stored, computed uint64) error {
	return fmt.Errorf("%w: stored %016x, computed %016x", ErrChecksum, stored, computed)
}

// finish handles the EOF opcode at off: the CRC trailer (RDB >= 5).
func (r *Reader) finish(off int64) error {
	r.crc = CRC64(r.crc, r.buf[r.crcPos:r.pos])
	r.crcPos = r.pos
	if r.version < 5 {
		// No trailer: the file ends at the EOF opcode. Bytes after it mean
		// damage the missing checksum cannot show (e.g. a changed version).
		if err := r.fill(1); err == nil {
			return &FormatError{Offset: r.Offset(), Err: fmt.Errorf("unexpected bytes after the EOF opcode of an RDB %d file", r.version)}
		}
		r.status = ChecksumAbsent
		return io.EOF
	}
	if err := r.fill(8); err != nil {
		return toFormatError(err, 0, nil, 0)
	}
	stored := binary.LittleEndian.Uint64(r.buf[r.pos:])
	r.pos += 8
	r.crcPos = r.pos
	switch stored {
	case 0:
		r.status = ChecksumNotComputed
	case r.crc:
		r.status = ChecksumOK
	default:
		return &FormatError{Offset: off + 1, Err: checksumErr(stored, r.crc)}
	}
	return io.EOF
}
