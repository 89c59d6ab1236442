package rdb

import "encoding/binary"

const (
	zlHeaderSize   = 10
	zlEnd          = 0xFF
	zlUnknownCount = 65535
)

// zlIter walks a ziplist blob, checking every entry as it goes.
type zlIter struct {
	b       []byte
	p       int
	n       int
	count   int
	tail    int
	prevLen int // size of the previous entry
	prevOff int // offset of the previous entry (-1 before the first)
}

// newZLIter checks a ziplist's header and end byte.
func newZLIter(b []byte) (zlIter, error) {
	if len(b) < zlHeaderSize+1 {
		return zlIter{}, errAt(0, "ziplist: %d bytes is shorter than the 11-byte minimum", len(b))
	}
	zlbytes := binary.LittleEndian.Uint32(b)
	if uint64(zlbytes) != uint64(len(b)) {
		return zlIter{}, errAt(0, "ziplist: zlbytes %d but string length %d", zlbytes, len(b))
	}
	tail := binary.LittleEndian.Uint32(b[4:])
	if uint64(tail) >= uint64(len(b)) {
		return zlIter{}, errAt(4, "ziplist: zltail %d beyond zlbytes %d", tail, len(b))
	}
	if b[len(b)-1] != zlEnd {
		return zlIter{}, errAt(len(b)-1, "ziplist: last byte 0x%02x, want end byte 0xff", b[len(b)-1])
	}
	return zlIter{b: b, p: zlHeaderSize, count: int(binary.LittleEndian.Uint16(b[8:])), tail: int(tail), prevOff: -1}, nil
}

// next returns the next entry; ok is false after the end byte (with the
// count and tail offset checked).
func (z *zlIter) next() (e lpEntry, ok bool, err error) {
	ok, err = z.into(&e)
	return e, ok, err
}

// into is next storing the entry in *e.
func (z *zlIter) into(e *lpEntry) (ok bool, err error) {
	*e = lpEntry{}
	b, p := z.b, z.p
	if p >= len(b) {
		return false, errAt(p, "ziplist: entry %d runs past the end", z.n)
	}
	if b[p] == zlEnd {
		if p != len(b)-1 {
			return false, errAt(p, "ziplist: end byte at offset %d but %d bytes follow", p, len(b)-1-p)
		}
		if z.count != zlUnknownCount && z.count != z.n {
			return false, errAt(8, "ziplist: zllen %d but found %d entries", z.count, z.n)
		}
		wantTail := zlHeaderSize
		if z.prevOff >= 0 {
			wantTail = z.prevOff
		}
		if z.tail != wantTail {
			return false, errAt(4, "ziplist: zltail %d but last entry at %d", z.tail, wantTail)
		}
		return false, nil
	}
	avail := len(b) - 1 - p
	start := p
	// prevlen
	var prev, hdr int
	if b[p] < 254 {
		prev, hdr = int(b[p]), 1
	} else {
		if b[p] == 255 || avail < 5 {
			return false, errAt(p, "ziplist: entry %d: bad prevlen", z.n)
		}
		prev, hdr = int(binary.LittleEndian.Uint32(b[p+1:])), 5
	}
	if prev != z.prevLen {
		return false, errAt(p, "ziplist: entry %d: prevlen %d but previous entry is %d bytes", z.n, prev, z.prevLen)
	}
	q := p + hdr
	if q >= len(b)-1 {
		return false, errAt(q, "ziplist: entry %d: missing encoding", z.n)
	}
	c := b[q]
	left := len(b) - 1 - q // bytes from the encoding to the end byte
	var size int           // encoding + data
	switch c >> 6 {
	case 0:
		n := int(c & 0x3f)
		size = 1 + n
		if size <= left {
			e.s = b[q+1 : q+size]
		}
	case 1:
		if left < 2 {
			return false, errAt(q, "ziplist: entry %d: truncated 14-bit string header", z.n)
		}
		n := int(c&0x3f)<<8 | int(b[q+1])
		size = 2 + n
		if size <= left {
			e.s = b[q+2 : q+size]
		}
	case 2:
		if left < 5 {
			return false, errAt(q, "ziplist: entry %d: truncated 32-bit string header", z.n)
		}
		n := uint64(binary.BigEndian.Uint32(b[q+1:]))
		if n > uint64(left) {
			return false, errAt(q, "ziplist: entry %d: string length %d beyond the %d bytes left", z.n, n, left)
		}
		size = 5 + int(n)
		if size <= left {
			e.s = b[q+5 : q+size]
		}
	default:
		e.isInt = true
		switch c {
		case 0xC0:
			size = 3
			if size <= left {
				e.v = int64(int16(binary.LittleEndian.Uint16(b[q+1:])))
			}
		case 0xD0:
			size = 5
			if size <= left {
				e.v = int64(int32(binary.LittleEndian.Uint32(b[q+1:])))
			}
		case 0xE0:
			size = 9
			if size <= left {
				e.v = int64(binary.LittleEndian.Uint64(b[q+1:]))
			}
		case 0xF0:
			size = 4
			if size <= left {
				u := uint32(b[q+1]) | uint32(b[q+2])<<8 | uint32(b[q+3])<<16
				e.v = int64(int32(u<<8) >> 8)
			}
		case 0xFE:
			size = 2
			if size <= left {
				e.v = int64(int8(b[q+1]))
			}
		default:
			if c >= 0xF1 && c <= 0xFD {
				size = 1
				e.v = int64(c&0x0f) - 1
			} else {
				return false, errAt(q, "ziplist: entry %d: invalid encoding byte 0x%02x", z.n, c)
			}
		}
	}
	if size > left {
		return false, errAt(q, "ziplist: entry %d: %d bytes beyond the %d bytes left", z.n, size, left)
	}
	z.p = q + size
	z.prevLen = z.p - start
	z.prevOff = start
	z.n++
	return true, nil
}
