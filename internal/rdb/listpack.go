package rdb

import (
	"encoding/binary"
	"strconv"
)

const (
	lpHeaderSize   = 6
	lpEnd          = 0xFF
	lpUnknownCount = 65535
)

// lpEntry is one listpack (or ziplist) element: a string or an integer.
type lpEntry struct {
	s     []byte
	v     int64
	isInt bool
}

// text returns the element as bytes: the string itself, or the integer as
// canonical decimal text formatted into scratch.
func (e *lpEntry) text(scratch []byte) []byte {
	if e.isInt {
		return strconv.AppendInt(scratch[:0], e.v, 10)
	}
	return e.s
}

// float returns the element as a float64 (zset scores).
func (e *lpEntry) float() (float64, bool) {
	if e.isInt {
		return float64(e.v), true
	}
	return parseFloat(e.s)
}

// lpIter walks a listpack blob, checking every entry as it goes.
type lpIter struct {
	b     []byte
	p     int
	n     int // entries returned so far
	count int // header num_elements
}

// newLPIter checks a listpack's header and terminator.
func newLPIter(b []byte) (lpIter, error) {
	if len(b) < lpHeaderSize+1 {
		return lpIter{}, errAt(0, "listpack: %d bytes is shorter than the 7-byte minimum", len(b))
	}
	total := binary.LittleEndian.Uint32(b)
	if uint64(total) != uint64(len(b)) {
		return lpIter{}, errAt(0, "listpack: total_bytes %d but string length %d", total, len(b))
	}
	if b[len(b)-1] != lpEnd {
		return lpIter{}, errAt(len(b)-1, "listpack: last byte 0x%02x, want terminator 0xff", b[len(b)-1])
	}
	return lpIter{b: b, p: lpHeaderSize, count: int(binary.LittleEndian.Uint16(b[4:]))}, nil
}

// lpBacklenSize is the number of bytes the backlen of an entry of size l takes.
func lpBacklenSize(l int) int {
	switch {
	case l <= 127:
		return 1
	case l < 16383:
		return 2
	case l < 2097151:
		return 3
	case l < 268435455:
		return 4
	}
	return 5
}

// next returns the next entry; ok is false after the terminator (with the
// count checked).
func (l *lpIter) next() (e lpEntry, ok bool, err error) {
	ok, err = l.into(&e)
	return e, ok, err
}

// into is next storing the entry in *e, which saves copying entries in the
// loops over packed values.
func (l *lpIter) into(e *lpEntry) (ok bool, err error) {
	b, p := l.b, l.p
	if p >= len(b) {
		return false, errAt(p, "listpack: entry %d runs past the end", l.n)
	}
	c := b[p]
	if c == lpEnd {
		if p != len(b)-1 {
			return false, errAt(p, "listpack: terminator at offset %d but %d bytes follow", p, len(b)-1-p)
		}
		if l.count != lpUnknownCount && l.count != l.n {
			return false, errAt(4, "listpack: header says %d entries, found %d", l.count, l.n)
		}
		return false, nil
	}
	avail := len(b) - 1 - p // bytes before the terminator
	// Fast paths: 7-bit integers and short strings with a 1-byte backlen.
	if c < 0x80 {
		if avail < 2 || b[p+1] != 1 {
			return false, errAt(p, "listpack: entry %d: bad backlen", l.n)
		}
		l.p = p + 2
		l.n++
		e.isInt, e.v = true, int64(c)
		return true, nil
	}
	if c&0xC0 == 0x80 {
		size := 1 + int(c&0x3f)
		if size+1 > avail {
			return false, errAt(p, "listpack: entry %d: %d bytes beyond the %d bytes left", l.n, size+1, avail)
		}
		if b[p+size] != byte(size) {
			return false, errAt(p+size, "listpack: entry %d: bad backlen", l.n)
		}
		e.s, e.isInt = b[p+1:p+size], false
		l.p = p + size + 1
		l.n++
		return true, nil
	}
	*e = lpEntry{}
	var size int // encoding+data
	switch {
	case c&0x80 == 0:
		e.isInt, e.v, size = true, int64(c&0x7f), 1
	case c&0xC0 == 0x80:
		n := int(c & 0x3f)
		size = 1 + n
		if size <= avail {
			e.s = b[p+1 : p+size]
		}
	case c&0xE0 == 0xC0:
		size = 2
		if size <= avail {
			u := int64(c&0x1f)<<8 | int64(b[p+1])
			if u >= 4096 {
				u -= 8192
			}
			e.isInt, e.v = true, u
		}
	case c&0xF0 == 0xE0:
		if avail < 2 {
			return false, errAt(p, "listpack: entry %d: truncated 12-bit string header", l.n)
		}
		n := int(c&0x0f)<<8 | int(b[p+1])
		size = 2 + n
		if size <= avail {
			e.s = b[p+2 : p+size]
		}
	case c == 0xF0:
		if avail < 5 {
			return false, errAt(p, "listpack: entry %d: truncated 32-bit string header", l.n)
		}
		n := uint64(binary.LittleEndian.Uint32(b[p+1:]))
		if n > uint64(avail) {
			return false, errAt(p, "listpack: entry %d: string length %d beyond the %d bytes left", l.n, n, avail)
		}
		size = 5 + int(n)
		if size <= avail {
			e.s = b[p+5 : p+size]
		}
	case c == 0xF1:
		size = 3
		if size <= avail {
			e.isInt, e.v = true, int64(int16(binary.LittleEndian.Uint16(b[p+1:])))
		}
	case c == 0xF2:
		size = 4
		if size <= avail {
			u := uint32(b[p+1]) | uint32(b[p+2])<<8 | uint32(b[p+3])<<16
			e.isInt, e.v = true, int64(int32(u<<8)>>8)
		}
	case c == 0xF3:
		size = 5
		if size <= avail {
			e.isInt, e.v = true, int64(int32(binary.LittleEndian.Uint32(b[p+1:])))
		}
	case c == 0xF4:
		size = 9
		if size <= avail {
			e.isInt, e.v = true, int64(binary.LittleEndian.Uint64(b[p+1:]))
		}
	default:
		return false, errAt(p, "listpack: entry %d: invalid encoding byte 0x%02x", l.n, c)
	}
	bl := lpBacklenSize(size)
	if size+bl > avail {
		return false, errAt(p, "listpack: entry %d: %d bytes beyond the %d bytes left", l.n, size+bl, avail)
	}
	// Check the backlen: most significant 7-bit group first, every byte but
	// the first has bit 7 set.
	q := p + size
	for i := bl - 1; i >= 0; i-- {
		want := byte(size>>(7*uint(i))) & 0x7f
		if i != bl-1 {
			want |= 0x80
		}
		if b[q] != want {
			return false, errAt(q, "listpack: entry %d: bad backlen", l.n)
		}
		q++
	}
	l.p = q
	l.n++
	return true, nil
}
