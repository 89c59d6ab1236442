package rdb

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Writer writes an RDB file: header, records, then the EOF opcode and the
// CRC-64 trailer. It writes values as given (raw serialized bytes, e.g. a
// Record.Value or the output of the Encode and Build helpers); it does not
// check them. Errors are sticky: after one, every method returns it.
type Writer struct {
	w       *bufio.Writer
	version int
	crc     uint64
	err     error
	scratch []byte

	// NoChecksum makes Close write an all-zero trailer, as a server with
	// rdbchecksum off does.
	NoChecksum bool
}

// NewWriter writes the header for version (1–12 as "REDIS%04d", 80 and up
// as Valkey's "VALKEY%03d") and returns a Writer.
func NewWriter(w io.Writer, version int) (*Writer, error) {
	var magic string
	switch {
	case version >= 1 && version <= MaxVersion:
		magic = fmt.Sprintf("REDIS%04d", version)
	case version >= MinValkeyVersion && version <= 999:
		magic = fmt.Sprintf("VALKEY%03d", version)
	default:
		return nil, fmt.Errorf("rdb writer: unsupported version %d", version)
	}
	wr := &Writer{w: bufio.NewWriterSize(w, 256<<10), version: version}
	wr.write([]byte(magic))
	return wr, wr.err
}

// Version is the RDB version being written.
func (w *Writer) Version() int { return w.version }

func (w *Writer) write(p []byte) {
	if w.err != nil {
		return
	}
	w.crc = CRC64(w.crc, p)
	if _, err := w.w.Write(p); err != nil {
		w.err = fmt.Errorf("write rdb: %w", err)
	}
}

// WriteRaw writes p as is (covered by the checksum); for fixtures and
// opcodes this Writer has no method for.
func (w *Writer) WriteRaw(p []byte) error {
	w.write(p)
	return w.err
}

// WriteAux writes an AUX field (RDB >= 7).
func (w *Writer) WriteAux(key, value []byte) error {
	b := append(w.scratch[:0], opAux)
	b = AppendString(b, key)
	b = AppendString(b, value)
	w.scratch = b
	w.write(b)
	return w.err
}

// WriteFunction writes a FUNCTION2 record holding a library's source code
// (RDB >= 10).
func (w *Writer) WriteFunction(code []byte) error {
	b := append(w.scratch[:0], opFunction2)
	b = AppendRawString(b, code)
	w.scratch = b
	w.write(b)
	return w.err
}

// SelectDB writes a SELECTDB record.
func (w *Writer) SelectDB(db int) error {
	w.scratch = AppendLen(append(w.scratch[:0], opSelectDB), uint64(db))
	w.write(w.scratch)
	return w.err
}

// ResizeDB writes a RESIZEDB hint (RDB >= 7).
func (w *Writer) ResizeDB(dbSize, expiresSize uint64) error {
	w.scratch = AppendLen(AppendLen(append(w.scratch[:0], opResizeDB), dbSize), expiresSize)
	w.write(w.scratch)
	return w.err
}

// WriteSlotInfo writes a SLOT_INFO record (RDB >= 12, cluster mode).
func (w *Writer) WriteSlotInfo(slot, keys, expires uint64) error {
	w.scratch = AppendLen(AppendLen(AppendLen(append(w.scratch[:0], opSlotInfo), slot), keys), expires)
	w.write(w.scratch)
	return w.err
}

// WriteModuleAux writes a MODULE_AUX record: module id, when (1 before the
// keyspace, 2 after), then body, which must be the module's tagged values
// ending with the EOF tag (see AppendModuleTag...).
func (w *Writer) WriteModuleAux(moduleID, when uint64, body []byte) error {
	b := AppendLen(append(w.scratch[:0], opModuleAux), moduleID)
	b = AppendLen(AppendLen(b, moduleOpUInt), when)
	w.scratch = b
	w.write(b)
	w.write(body)
	return w.err
}

// WriteKey writes one key: expireMs (absolute unix ms; -1 for none) as
// EXPIRETIME_MS (or EXPIRETIME in seconds for RDB < 3), idle seconds (-1
// for none) as IDLE, freq (-1 for none) as FREQ, then the type byte, the
// key and the raw value bytes.
func (w *Writer) WriteKey(key []byte, t Type, raw []byte, expireMs, idle int64, freq int) error {
	b := w.scratch[:0]
	if expireMs >= 0 {
		if w.version < 3 {
			b = append(b, opExpireTime)
			b = binary.LittleEndian.AppendUint32(b, uint32(expireMs/1000))
		} else {
			b = append(b, opExpireTimeMS)
			b = binary.LittleEndian.AppendUint64(b, uint64(expireMs))
		}
	}
	if idle >= 0 {
		b = AppendLen(append(b, opIdle), uint64(idle))
	}
	if freq >= 0 {
		b = append(b, opFreq, byte(freq))
	}
	b = append(b, t.Wire())
	b = AppendString(b, key)
	w.scratch = b
	w.write(b)
	w.write(raw)
	return w.err
}

// StreamKey writes the head of one key as WriteKey does, without its
// value, and returns a Visitor whose Raw writes the value's serialized
// bytes after it as a Reader streams them (Options.StreamValues): a value
// copied into a file of the same version is never held whole. The
// Visitor's errors are the Writer's.
func (w *Writer) StreamKey(key []byte, t Type, expireMs, idle int64, freq int) (*Visitor, error) {
	if err := w.WriteKey(key, t, nil, expireMs, idle, freq); err != nil {
		return nil, err
	}
	return &Visitor{Raw: w.WriteRaw}, nil
}

// Close writes the EOF opcode and, for RDB >= 5, the CRC-64 trailer (all
// zero when NoChecksum is set), then flushes. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	w.write([]byte{opEOF})
	if w.err != nil {
		return w.err
	}
	if w.version >= 5 {
		var t [8]byte
		if !w.NoChecksum {
			binary.LittleEndian.PutUint64(t[:], w.crc)
		}
		if _, err := w.w.Write(t[:]); err != nil {
			w.err = fmt.Errorf("write rdb: %w", err)
			return w.err
		}
	}
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("write rdb: %w", err)
	}
	return w.err
}

// AppendLen appends n in the smallest RDB length form.
func AppendLen(dst []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(dst, byte(n))
	case n < 1<<14:
		return append(dst, byte(n>>8)|0x40, byte(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0x80), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0x81), n)
}

// canonicalInt parses s as Redis's string2ll does: canonical decimal only
// (no leading zeros, no "+", no "-0"), within int64.
func canonicalInt(s []byte) (int64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	neg := s[0] == '-'
	d := s
	if neg {
		d = s[1:]
	}
	if len(d) == 0 || d[0] < '1' && !(len(d) == 1 && d[0] == '0' && !neg) || d[0] > '9' {
		return 0, false
	}
	var u uint64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (math.MaxUint64-9)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// AppendString appends s as an RDB string, integer-encoded (as Redis does)
// when it is canonical decimal text of at most 11 bytes that fits in 32 bits.
func AppendString(dst, s []byte) []byte {
	if len(s) <= 11 {
		if v, ok := canonicalInt(s); ok {
			switch {
			case v >= math.MinInt8 && v <= math.MaxInt8:
				return append(dst, 0xC0, byte(v))
			case v >= math.MinInt16 && v <= math.MaxInt16:
				return binary.LittleEndian.AppendUint16(append(dst, 0xC1), uint16(v))
			case v >= math.MinInt32 && v <= math.MaxInt32:
				return binary.LittleEndian.AppendUint32(append(dst, 0xC2), uint32(v))
			}
		}
	}
	return AppendRawString(dst, s)
}

// AppendRawString appends s as a length-prefixed RDB string, never
// integer-encoded or compressed.
func AppendRawString(dst, s []byte) []byte {
	return append(AppendLen(dst, uint64(len(s))), s...)
}

// AppendLZFString appends s as an LZF-encoded RDB string (0xC3) whose
// compressed data is only literal runs; any loader accepts it.
func AppendLZFString(dst, s []byte) []byte {
	var c []byte
	for i := 0; i < len(s); i += 32 {
		j := min(i+32, len(s))
		c = append(c, byte(j-i-1))
		c = append(c, s[i:j]...)
	}
	dst = AppendLen(append(dst, 0xC3), uint64(len(c)))
	dst = AppendLen(dst, uint64(len(s)))
	return append(dst, c...)
}

// EncodeString returns the value bytes of a type-0 string.
func EncodeString(s []byte) []byte { return AppendString(nil, s) }

// EncodeList returns the value bytes of a type-1 list (also usable as a
// type-2 set of distinct members).
func EncodeList(elems [][]byte) []byte {
	b := AppendLen(nil, uint64(len(elems)))
	for _, e := range elems {
		b = AppendString(b, e)
	}
	return b
}

// EncodeSet returns the value bytes of a type-2 set; members must be distinct.
func EncodeSet(members [][]byte) []byte { return EncodeList(members) }

// EncodeHash returns the value bytes of a type-4 hash from f1 v1 f2 v2 ...;
// fields must be distinct.
func EncodeHash(fieldsValues [][]byte) []byte {
	b := AppendLen(nil, uint64(len(fieldsValues)/2))
	for _, e := range fieldsValues[:len(fieldsValues)/2*2] {
		b = AppendString(b, e)
	}
	return b
}

// EncodeZSet2 returns the value bytes of a type-5 zset (binary doubles).
func EncodeZSet2(members [][]byte, scores []float64) []byte {
	b := AppendLen(nil, uint64(len(members)))
	for i, m := range members {
		b = AppendString(b, m)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(scores[i]))
	}
	return b
}

// EncodeZSet returns the value bytes of a legacy type-3 zset (scores as
// length-prefixed text; NaN and ±Inf as 253, 254, 255).
func EncodeZSet(members [][]byte, scores []float64) []byte {
	b := AppendLen(nil, uint64(len(members)))
	for i, m := range members {
		b = AppendString(b, m)
		switch s := scores[i]; {
		case math.IsNaN(s):
			b = append(b, 253)
		case math.IsInf(s, 1):
			b = append(b, 254)
		case math.IsInf(s, -1):
			b = append(b, 255)
		default:
			txt := strconv.FormatFloat(s, 'g', 17, 64)
			b = append(append(b, byte(len(txt))), txt...)
		}
	}
	return b
}

// EncodeBlob returns the value bytes of a type whose value is one packed
// blob (types 9–13, 16, 17, 20, 23): the blob as a raw RDB string.
func EncodeBlob(blob []byte) []byte { return AppendRawString(nil, blob) }

// BuildListpack returns a listpack holding entries, integer-encoding the
// canonical integer ones as Redis does.
func BuildListpack(entries [][]byte) []byte {
	b := make([]byte, lpHeaderSize, 64)
	for _, e := range entries {
		start := len(b)
		if v, ok := canonicalInt(e); ok {
			switch {
			case v >= 0 && v <= 127:
				b = append(b, byte(v))
			case v >= -4096 && v <= 4095:
				u := uint16(v) & 0x1fff
				b = append(b, 0xC0|byte(u>>8), byte(u))
			case v >= math.MinInt16 && v <= math.MaxInt16:
				b = binary.LittleEndian.AppendUint16(append(b, 0xF1), uint16(v))
			case v >= -(1<<23) && v < 1<<23:
				u := uint32(v)
				b = append(b, 0xF2, byte(u), byte(u>>8), byte(u>>16))
			case v >= math.MinInt32 && v <= math.MaxInt32:
				b = binary.LittleEndian.AppendUint32(append(b, 0xF3), uint32(v))
			default:
				b = binary.LittleEndian.AppendUint64(append(b, 0xF4), uint64(v))
			}
		} else {
			switch n := len(e); {
			case n < 64:
				b = append(b, 0x80|byte(n))
			case n < 4096:
				b = append(b, 0xE0|byte(n>>8), byte(n))
			default:
				b = binary.LittleEndian.AppendUint32(append(b, 0xF0), uint32(n))
			}
			b = append(b, e...)
		}
		l := len(b) - start
		bl := lpBacklenSize(l)
		for i := bl - 1; i >= 0; i-- {
			c := byte(l>>(7*uint(i))) & 0x7f
			if i != bl-1 {
				c |= 0x80
			}
			b = append(b, c)
		}
	}
	b = append(b, lpEnd)
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	n := len(entries)
	if n >= lpUnknownCount {
		n = lpUnknownCount
	}
	binary.LittleEndian.PutUint16(b[4:], uint16(n))
	return b
}

// BuildZiplist returns a ziplist holding entries, integer-encoding the
// canonical integer ones as Redis did.
func BuildZiplist(entries [][]byte) []byte {
	b := make([]byte, zlHeaderSize, 64)
	prev, tail := 0, zlHeaderSize
	for _, e := range entries {
		start := len(b)
		tail = start
		if prev < 254 {
			b = append(b, byte(prev))
		} else {
			b = binary.LittleEndian.AppendUint32(append(b, 0xFE), uint32(prev))
		}
		if v, ok := canonicalInt(e); ok && len(e) <= 20 {
			switch {
			case v >= 0 && v <= 12:
				b = append(b, 0xF1+byte(v))
			case v >= math.MinInt8 && v <= math.MaxInt8:
				b = append(b, 0xFE, byte(v))
			case v >= math.MinInt16 && v <= math.MaxInt16:
				b = binary.LittleEndian.AppendUint16(append(b, 0xC0), uint16(v))
			case v >= -(1<<23) && v < 1<<23:
				u := uint32(v)
				b = append(b, 0xF0, byte(u), byte(u>>8), byte(u>>16))
			case v >= math.MinInt32 && v <= math.MaxInt32:
				b = binary.LittleEndian.AppendUint32(append(b, 0xD0), uint32(v))
			default:
				b = binary.LittleEndian.AppendUint64(append(b, 0xE0), uint64(v))
			}
		} else {
			switch n := len(e); {
			case n < 64:
				b = append(b, byte(n))
			case n < 16384:
				b = append(b, 0x40|byte(n>>8), byte(n))
			default:
				b = binary.BigEndian.AppendUint32(append(b, 0x80), uint32(n))
			}
			b = append(b, e...)
		}
		prev = len(b) - start
	}
	b = append(b, zlEnd)
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	binary.LittleEndian.PutUint32(b[4:], uint32(tail))
	n := len(entries)
	if n >= zlUnknownCount {
		n = zlUnknownCount
	}
	binary.LittleEndian.PutUint16(b[8:], uint16(n))
	return b
}

// BuildIntset returns an intset of vals, which must be strictly ascending,
// in the smallest encoding that holds them all.
func BuildIntset(vals []int64) []byte {
	enc := 2
	for _, v := range vals {
		if v < math.MinInt32 || v > math.MaxInt32 {
			enc = 8
		} else if (v < math.MinInt16 || v > math.MaxInt16) && enc < 4 {
			enc = 4
		}
	}
	b := binary.LittleEndian.AppendUint32(nil, uint32(enc))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vals)))
	for _, v := range vals {
		switch enc {
		case 2:
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		case 4:
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		default:
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	}
	return b
}

// BuildZipmap returns a zipmap of f1 v1 f2 v2 ... (Redis <= 2.4 hashes).
func BuildZipmap(fieldsValues [][]byte) []byte {
	n := len(fieldsValues) / 2
	b := []byte{byte(min(n, 254))}
	zmLen := func(b []byte, l int) []byte {
		if l < 254 {
			return append(b, byte(l))
		}
		return binary.LittleEndian.AppendUint32(append(b, 254), uint32(l))
	}
	for i := 0; i+1 < len(fieldsValues); i += 2 {
		b = zmLen(b, len(fieldsValues[i]))
		b = append(b, fieldsValues[i]...)
		b = zmLen(b, len(fieldsValues[i+1]))
		b = append(b, 0)
		b = append(b, fieldsValues[i+1]...)
	}
	return append(b, 0xFF)
}

// AppendModuleTag appends one tagged module value: op 1 or 2 with an
// integer, 3 float (4 bytes), 4 double (8 bytes), 5 string; op 0 (EOF)
// ends a module value and takes no payload.
func AppendModuleTag(dst []byte, op int, v uint64, s []byte) []byte {
	dst = AppendLen(dst, uint64(op))
	switch op {
	case moduleOpSInt, moduleOpUInt:
		dst = AppendLen(dst, v)
	case moduleOpFloat:
		dst = binary.LittleEndian.AppendUint32(dst, uint32(v))
	case moduleOpDouble:
		dst = binary.LittleEndian.AppendUint64(dst, v)
	case moduleOpString:
		dst = AppendRawString(dst, s)
	}
	return dst
}
