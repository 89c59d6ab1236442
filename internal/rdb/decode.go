package rdb

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"sync"
)

// decoder walks one serialized value held in memory. Its scratch buffers
// are reused from value to value, so a Reader validates without allocating
// per record.
type decoder struct {
	b []byte
	p int

	sbuf [2][]byte // decoded (integer or LZF) strings, used in turn
	si   int
	num  [2][24]byte

	// stream scratch
	ents   []lpEntry
	fields [][]byte
	arena  []byte
	offs   []int
	order  []int
	gname  []byte
	pel    map[[16]byte]uint8

	pc   pieceState
	dups dupSet
}

// Decode walks the value of type t whose serialized bytes are raw (as in
// Record.Value), checking its structure as deep sanitization would, and
// calls v for every element (v may be nil to only validate). Problems are
// *FormatError with Offset relative to raw; an error returned by a Visitor
// callback stops the walk and is returned as is.
func Decode(t Type, raw []byte, v *Visitor) error {
	d := decoders.Get().(*decoder)
	err := d.decode(t, raw, v)
	d.release()
	decoders.Put(d)
	return toFormatError(err, 0, nil, t)
}

// decoders keeps the decoders (and their scratch buffers) of Decode calls,
// which callers such as the digest make for every value.
var decoders = sync.Pool{New: func() any { return new(decoder) }}

// maxPooledScratch bounds a scratch buffer a pooled decoder keeps.
const maxPooledScratch = 1 << 20

// release drops the reference to the value just walked and any scratch
// buffer grown beyond maxPooledScratch. (Stream scratch may still point
// into the last stream value; sync.Pool drops idle decoders at GC.)
func (d *decoder) release() {
	d.b, d.p, d.pc = nil, 0, pieceState{}
	for i := range d.sbuf {
		if cap(d.sbuf[i]) > maxPooledScratch {
			d.sbuf[i] = nil
		}
	}
	if cap(d.ents) > maxPooledScratch/40 || cap(d.fields) > maxPooledScratch/24 || cap(d.arena) > maxPooledScratch ||
		cap(d.offs) > maxPooledScratch/8 || cap(d.order) > maxPooledScratch/8 || len(d.pel) > maxPooledScratch/32 {
		d.ents, d.fields, d.arena, d.offs, d.order, d.pel = nil, nil, nil, nil, nil, nil
	}
	if cap(d.dups.h) > maxPooledScratch/8 {
		d.dups.h = nil
	}
	d.dups.reset(false)
}

// toFormatError turns a posError into a FormatError at base+offset; other
// errors (from Visitor callbacks) pass through.
func toFormatError(err error, base int64, key []byte, t Type) error {
	if err == nil {
		return nil
	}
	var pe *posError
	if !errors.As(err, &pe) {
		return err
	}
	fe := &FormatError{Offset: base + int64(pe.off), Err: pe.err}
	if key != nil {
		fe.Key = append([]byte{}, key...)
		fe.Type = t
	}
	return fe
}

// KindOf maps an object type byte to its logical kind; ok is false for a
// byte that is not an object type.
func KindOf(t Type) (Kind, bool) {
	switch t {
	case TypeString:
		return KindString, true
	case TypeList, TypeListZiplist, TypeListQuicklist, TypeListQuicklist2:
		return KindList, true
	case TypeSet, TypeSetIntset, TypeSetListpack:
		return KindSet, true
	case TypeZSet, TypeZSet2, TypeZSetZiplist, TypeZSetListpack:
		return KindZSet, true
	case TypeHash, TypeHashZipmap, TypeHashZiplist, TypeHashListpack,
		TypeHashMetadataPreGA, TypeHashListpackExPreGA, TypeHashMetadata, TypeHashListpackEx, TypeValkeyHash2:
		return KindHash, true
	case TypeModulePreGA, TypeModule2:
		return KindModule, true
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3, TypeStreamListpacks4:
		return KindStream, true
	}
	return 0, false
}

func (d *decoder) left() int { return len(d.b) - d.p }

// fixed returns the next n bytes.
func (d *decoder) fixed(n int) ([]byte, error) {
	if n > d.left() {
		return nil, truncAt(d.p, n, d.left())
	}
	s := d.b[d.p : d.p+n]
	d.p += n
	return s, nil
}

// rdbLen reads a length; enc is true for the 11xxxxxx special string forms
// (n is then the low 6 bits).
func (d *decoder) rdbLen() (n uint64, enc bool, err error) {
	if d.p >= len(d.b) {
		return 0, false, truncAt(d.p, 1, 0)
	}
	size := lenSize(d.b[d.p])
	if size == 0 {
		return 0, false, errAt(d.p, "bad length byte 0x%02x", d.b[d.p])
	}
	if d.left() < size {
		return 0, false, truncAt(d.p, size, d.left())
	}
	n, enc = parseLen(d.b[d.p : d.p+size])
	d.p += size
	return n, enc, nil
}

// length reads a plain length (no string encodings).
func (d *decoder) length(what string) (uint64, error) {
	off := d.p
	n, enc, err := d.rdbLen()
	if err != nil {
		return 0, err
	}
	if enc {
		return 0, errAt(off, "%s: string encoding byte 0x%02x where a length is expected", what, d.b[off])
	}
	return n, nil
}

// count reads an element count and checks that each of the n elements could
// still fit, given that every one takes at least minSize bytes.
func (d *decoder) count(what string, minSize int) (int, error) {
	off := d.p
	n, err := d.length(what)
	if err != nil {
		return 0, err
	}
	if n > uint64(d.left()/minSize) {
		return 0, errAt(off, "%s %d, but only %d bytes left", what, n, d.left())
	}
	return int(n), nil
}

// str reads an RDB string and returns its decoded bytes (valid until the
// second next call of str), the offset of its first byte, where its raw
// bytes start and whether it was LZF-compressed.
func (d *decoder) str() (s []byte, off, dataOff int, compressed bool, err error) {
	off = d.p
	n, enc, err := d.rdbLen()
	if err != nil {
		return nil, off, 0, false, err
	}
	if !enc {
		if n > uint64(d.left()) {
			return nil, off, 0, false, truncAt(d.p, int(min(n, math.MaxInt32)), d.left())
		}
		dataOff = d.p
		s = d.b[d.p : d.p+int(n)]
		d.p += int(n)
		return s, off, dataOff, false, nil
	}
	d.si ^= 1
	buf := d.sbuf[d.si][:0]
	var v int64
	switch n {
	case 0:
		if d.left() < 1 {
			return nil, off, 0, false, truncAt(d.p, 1, d.left())
		}
		v = int64(int8(d.b[d.p]))
		d.p++
	case 1:
		if d.left() < 2 {
			return nil, off, 0, false, truncAt(d.p, 2, d.left())
		}
		v = int64(int16(binary.LittleEndian.Uint16(d.b[d.p:])))
		d.p += 2
	case 2:
		if d.left() < 4 {
			return nil, off, 0, false, truncAt(d.p, 4, d.left())
		}
		v = int64(int32(binary.LittleEndian.Uint32(d.b[d.p:])))
		d.p += 4
	case 3:
		clen, err := d.length("LZF compressed length")
		if err != nil {
			return nil, off, 0, false, err
		}
		ulenOff := d.p
		ulen, err := d.length("LZF uncompressed length")
		if err != nil {
			return nil, off, 0, false, err
		}
		if clen > uint64(d.left()) {
			return nil, off, 0, false, truncAt(d.p, int(min(clen, math.MaxInt32)), d.left())
		}
		if ulen > uint64(clen)*lzfMaxRatio+lzfMaxRatio {
			return nil, off, 0, false, errAt(ulenOff, "LZF uncompressed length %d implausible for %d compressed bytes", ulen, clen)
		}
		dataOff = d.p
		in := d.b[d.p : d.p+int(clen)]
		d.p += int(clen)
		buf, err = lzfDecompress(buf, in, int(ulen))
		d.sbuf[d.si] = buf
		if err != nil {
			return nil, off, 0, false, rebase(err, off, dataOff, false, "LZF string")
		}
		return buf, off, dataOff, true, nil
	default:
		return nil, off, 0, false, errAt(off, "unknown string encoding 0x%02x", d.b[off])
	}
	buf = strconv.AppendInt(buf, v, 10)
	d.sbuf[d.si] = buf
	return buf, off, off, false, nil
}

// int64LE reads 8 bytes little-endian.
func (d *decoder) int64LE() (int64, error) {
	b, err := d.fixed(8)
	if err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(b)), nil
}

func (d *decoder) decode(t Type, raw []byte, v *Visitor) error {
	d.dups.reset(true)
	if err := d.walk(t, raw, v); err != nil {
		return err
	}
	err := d.checkDuplicates(t, raw)
	d.dups.reset(false)
	return err
}

func (d *decoder) walk(t Type, raw []byte, v *Visitor) error {
	d.b, d.p = raw, 0
	if v == nil {
		v = &Visitor{}
	}
	var err error
	if Piecewise(t) {
		err = d.walkPieces(t, v)
	} else {
		err = d.walkValue(t, v)
	}
	if err != nil {
		return err
	}
	if d.p != len(d.b) {
		return errAt(d.p, "%d unexpected bytes after the value", len(d.b)-d.p)
	}
	return nil
}

// walkValue walks a value that is not Piecewise.
func (d *decoder) walkValue(t Type, v *Visitor) error {
	var err error
	switch t {
	case TypeString:
		var s []byte
		if s, _, _, _, err = d.str(); err == nil && v.String != nil {
			err = v.String(s)
		}
	case TypeModulePreGA:
		err = errAt(0, "module value of type 6 (MODULE_PRE_GA, Redis 4.0 release candidates) is not supported")
	case TypeModule2:
		_, err = d.module()
	case TypeHashZipmap:
		err = d.blob("zipmap", func(b []byte) error { return d.walkZipmap(b, v.HashField) })
	case TypeListZiplist:
		err = d.blob("ziplist", func(b []byte) error { _, err := d.walkPacked(b, false, packList, v); return err })
	case TypeSetIntset:
		err = d.blob("intset", func(b []byte) error { return d.walkIntset(b, v.SetMember) })
	case TypeZSetZiplist, TypeZSetListpack:
		err = d.blob(packedName(t == TypeZSetListpack), func(b []byte) error {
			_, err := d.walkPacked(b, t == TypeZSetListpack, packZSet, v)
			return err
		})
	case TypeHashZiplist, TypeHashListpack:
		err = d.blob(packedName(t == TypeHashListpack), func(b []byte) error {
			_, err := d.walkPacked(b, t == TypeHashListpack, packHash, v)
			return err
		})
	case TypeSetListpack:
		err = d.blob("listpack", func(b []byte) error { _, err := d.walkPacked(b, true, packSet, v); return err })
	case TypeHashListpackExPreGA, TypeHashListpackEx:
		if t == TypeHashListpackEx {
			if _, err = d.int64LE(); err != nil {
				break
			}
		}
		err = d.blob("listpack", func(b []byte) error { _, err := d.walkPacked(b, true, packHashEx, v); return err })
	default:
		return errAt(0, "unknown object type %d", t)
	}
	return err
}

func packedName(listpack bool) string {
	if listpack {
		return "listpack"
	}
	return "ziplist"
}

// blob reads a string and runs walk over its bytes, moving errors to the
// string's position in the value.
func (d *decoder) blob(what string, walk func(b []byte) error) error {
	s, off, dataOff, comp, err := d.str()
	if err != nil {
		return err
	}
	if err := walk(s); err != nil {
		return rebase(err, off, dataOff, comp, what)
	}
	return nil
}

// pieceState is what the pieces of a value walked so far established
// (walkPieces, or the Reader decoding a big value as it arrives).
type pieceState struct {
	t         Type
	v         *Visitor
	n         int      // pieces done
	minExp    int64    // TypeHashMetadata: the minimum field expire the TTLs are relative to
	prevKey   [16]byte // streams: the previous node's key
	first     StreamID // streams: the first live entry
	haveFirst bool
}

// Piecewise reports whether a value of type t is a count of pieces (list
// elements, set members, zset and hash entries, quicklist nodes, stream
// nodes) that a Reader with Options.StreamValues can decode one at a time
// instead of holding the value whole.
func Piecewise(t Type) bool {
	switch t {
	case TypeList, TypeSet, TypeZSet, TypeZSet2, TypeHash, TypeListQuicklist, TypeListQuicklist2,
		TypeHashMetadataPreGA, TypeHashMetadata, TypeValkeyHash2,
		TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3, TypeStreamListpacks4:
		return true
	}
	return false
}

// pieceCount names the count of pieces of type t and the fewest bytes a
// piece takes.
func pieceCount(t Type) (string, int) {
	switch t {
	case TypeZSet, TypeZSet2:
		return "zset length", 2
	case TypeHash:
		return "hash length", 2
	case TypeHashMetadataPreGA, TypeHashMetadata:
		return "hash length", 3
	case TypeValkeyHash2:
		return "hash length", 10
	case TypeListQuicklist, TypeListQuicklist2:
		return "quicklist node count", 1
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3, TypeStreamListpacks4:
		return "stream node count", 2
	}
	return "element count", 1
}

// walkPieces walks a Piecewise value held whole.
func (d *decoder) walkPieces(t Type, v *Visitor) error {
	n, err := d.piecesHead(t, v, false)
	if err != nil {
		return err
	}
	for range n {
		if err := d.piece(); err != nil {
			return err
		}
	}
	return d.piecesTail()
}

// piecesHead reads what comes before the pieces of a value of type t and
// their count, and starts d.pc. A value that arrives piece by piece
// (partial) cannot have its count checked against the bytes left.
func (d *decoder) piecesHead(t Type, v *Visitor, partial bool) (uint64, error) {
	d.pc = pieceState{t: t, v: v}
	if t == TypeHashMetadata {
		var err error
		if d.pc.minExp, err = d.int64LE(); err != nil {
			return 0, err
		}
	}
	what, minSize := pieceCount(t)
	if partial {
		return d.length(what)
	}
	n, err := d.count(what, minSize)
	return uint64(n), err
}

// piece walks the next piece of the value d.pc describes.
func (d *decoder) piece() error {
	pc := &d.pc
	i := pc.n
	pc.n++
	switch pc.t {
	case TypeList, TypeSet:
		s, _, _, _, err := d.str()
		if err != nil {
			return err
		}
		cb := pc.v.ListElem
		if pc.t == TypeSet {
			d.dups.add(s)
			cb = pc.v.SetMember
		}
		if cb != nil {
			return cb(s)
		}
		return nil
	case TypeZSet, TypeZSet2:
		return d.zsetEntry(pc.t, pc.v.ZSetMember)
	case TypeHash, TypeHashMetadataPreGA, TypeHashMetadata, TypeValkeyHash2:
		return d.hashEntry(pc.t, pc.minExp, pc.v.HashField)
	case TypeListQuicklist, TypeListQuicklist2:
		return d.quicklistNode(pc.t, i, pc.v)
	}
	return d.streamNodePiece(i)
}

// piecesTail walks what follows the pieces: a stream's metadata and groups.
func (d *decoder) piecesTail() error {
	switch d.pc.t {
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3, TypeStreamListpacks4:
		return d.streamTail()
	}
	return nil
}

func (d *decoder) zsetEntry(t Type, cb func([]byte, float64) error) error {
	m, _, _, _, err := d.str()
	if err != nil {
		return err
	}
	d.dups.add(m)
	var score float64
	if t == TypeZSet2 {
		b, err := d.fixed(8)
		if err != nil {
			return err
		}
		score = math.Float64frombits(binary.LittleEndian.Uint64(b))
	} else {
		off := d.p
		b, err := d.fixed(1)
		if err != nil {
			return err
		}
		switch l := int(b[0]); l {
		case 253:
			score = math.NaN()
		case 254:
			score = math.Inf(1)
		case 255:
			score = math.Inf(-1)
		default:
			txt, err := d.fixed(l)
			if err != nil {
				return err
			}
			var ok bool
			if score, ok = parseFloat(txt); !ok {
				return errAt(off, "zset score (%d bytes of text) is not a number", len(txt))
			}
		}
	}
	if cb != nil {
		return cb(m, score)
	}
	return nil
}

// hashEntry walks one field of a hash of type TypeHash, TypeHashMetadata
// (a TTL relative to minExp first), TypeHashMetadataPreGA (an absolute TTL
// first) or Valkey's TypeValkeyHash2 (an absolute expire time in unix ms
// after the value, 8 bytes little-endian, -1 for none).
func (d *decoder) hashEntry(t Type, minExp int64, cb func(f, v []byte, exp int64) error) error {
	var exp int64
	if t == TypeHashMetadata || t == TypeHashMetadataPreGA {
		ttl, err := d.length("field TTL")
		if err != nil {
			return err
		}
		exp = int64(ttl)
		if t == TypeHashMetadata && ttl != 0 {
			exp = minExp + int64(ttl) - 1
		}
	}
	f, _, _, _, err := d.str()
	if err != nil {
		return err
	}
	d.dups.add(f)
	val, _, _, _, err := d.str()
	if err != nil {
		return err
	}
	if t == TypeValkeyHash2 {
		if exp, err = d.int64LE(); err != nil {
			return err
		}
		if exp < -1 {
			return errAt(d.p-8, "field TTL %d: want -1 or a unix time in ms", exp)
		}
		if exp == -1 {
			exp = 0
		}
	}
	if cb != nil {
		return cb(f, val, exp)
	}
	return nil
}

func (d *decoder) quicklistNode(t Type, i int, v *Visitor) error {
	container := uint64(2)
	if t == TypeListQuicklist2 {
		off := d.p
		var err error
		if container, err = d.length("quicklist container"); err != nil {
			return err
		}
		if container != 1 && container != 2 {
			return errAt(off, "quicklist node %d: container %d, want 1 (plain) or 2 (packed)", i, container)
		}
	}
	s, off, dataOff, comp, err := d.str()
	if err != nil {
		return err
	}
	if container == 1 {
		if v.ListElem != nil {
			return v.ListElem(s)
		}
		return nil
	}
	listpack := t == TypeListQuicklist2
	cnt, err := d.walkPacked(s, listpack, packList, v)
	if err != nil {
		return rebase(err, off, dataOff, comp, "quicklist node "+strconv.Itoa(i)+" "+packedName(listpack))
	}
	if cnt == 0 {
		return errAt(off, "quicklist node %d is empty", i)
	}
	return nil
}

// packMode says what the entries of a packed container are.
type packMode int

const (
	packList   packMode = iota // elements
	packSet                    // members
	packZSet                   // member, score
	packHash                   // field, value
	packHashEx                 // field, value, expireAt
)

// walkPacked walks a listpack (or ziplist) whose entries are grouped as
// mode says, calling v's callback for every group. It returns the number
// of entries.
func (d *decoder) walkPacked(b []byte, listpack bool, mode packMode, v *Visitor) (int, error) {
	var lp lpIter
	var zl zlIter
	var err error
	if listpack {
		lp, err = newLPIter(b)
	} else {
		zl, err = newZLIter(b)
	}
	if err != nil {
		return 0, err
	}
	width := 1
	switch mode {
	case packZSet, packHash:
		width = 2
	case packHashEx:
		width = 3
	}
	var tup [3]lpEntry
	n, k := 0, 0
	for {
		var ok bool
		off := lp.p
		if listpack {
			ok, err = lp.into(&tup[k])
		} else {
			off = zl.p
			ok, err = zl.into(&tup[k])
		}
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		n++
		if k++; k < width {
			continue
		}
		k = 0
		switch mode {
		case packList:
			if v.ListElem != nil {
				err = v.ListElem(tup[0].text(d.num[0][:0]))
			}
		case packSet:
			m := tup[0].text(d.num[0][:0])
			d.dups.add(m)
			if v.SetMember != nil {
				err = v.SetMember(m)
			}
		case packZSet:
			m := tup[0].text(d.num[0][:0])
			d.dups.add(m)
			if v.ZSetMember == nil {
				if !tup[1].isInt && !validFloat(tup[1].s) {
					return 0, errAt(off, "zset score (a %d-byte string) is not a number", len(tup[1].s))
				}
				break
			}
			score, ok := tup[1].float()
			if !ok {
				return 0, errAt(off, "zset score (a %d-byte string) is not a number", len(tup[1].s))
			}
			err = v.ZSetMember(m, score)
		case packHash, packHashEx:
			var exp int64
			if mode == packHashEx {
				if !tup[2].isInt {
					return 0, errAt(off, "hash field TTL (a %d-byte string) is not an integer", len(tup[2].s))
				}
				exp = tup[2].v
			}
			f := tup[0].text(d.num[0][:0])
			d.dups.add(f)
			if v.HashField != nil {
				err = v.HashField(f, tup[1].text(d.num[1][:0]), exp)
			}
		}
		if err != nil {
			return 0, err
		}
	}
	if k != 0 {
		return 0, errAt(0, "%s: %d entries is not a multiple of %d", packedName(listpack), n, width)
	}
	return n, nil
}

func (d *decoder) walkIntset(b []byte, cb func([]byte) error) error {
	s, err := parseIntset(b)
	if err != nil {
		return err
	}
	if cb == nil {
		return nil
	}
	for i := range s.n {
		if err := cb(strconv.AppendInt(d.num[0][:0], s.at(i), 10)); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) walkZipmap(b []byte, cb func(f, v []byte, exp int64) error) error {
	it, err := newZMIter(b)
	if err != nil {
		return err
	}
	for {
		f, v, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		d.dups.add(f)
		if cb != nil {
			if err := cb(f, v, 0); err != nil {
				return err
			}
		}
	}
}
