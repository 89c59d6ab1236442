package rdb

import "encoding/binary"

// zmIter walks a zipmap blob (type 9), checking it as it goes.
type zmIter struct {
	b     []byte
	p     int
	n     int // pairs returned
	count int // zmlen, or >= 254 when unknown
}

func newZMIter(b []byte) (zmIter, error) {
	if len(b) < 2 {
		return zmIter{}, errAt(0, "zipmap: %d bytes is shorter than the 2-byte minimum", len(b))
	}
	if b[len(b)-1] != 0xFF {
		return zmIter{}, errAt(len(b)-1, "zipmap: last byte 0x%02x, want end byte 0xff", b[len(b)-1])
	}
	return zmIter{b: b, p: 1, count: int(b[0])}, nil
}

// zmLen reads a zipmap length at p; end is true for the 0xFF end marker.
func (z *zmIter) zmLen(what string) (n, size int, end bool, err error) {
	b, p := z.b, z.p
	if p >= len(b) {
		return 0, 0, false, errAt(p, "zipmap: pair %d: %s length runs past the end", z.n, what)
	}
	switch c := b[p]; {
	case c < 254:
		return int(c), 1, false, nil
	case c == 254:
		if len(b)-p < 5 {
			return 0, 0, false, errAt(p, "zipmap: pair %d: truncated %s length", z.n, what)
		}
		v := binary.LittleEndian.Uint32(b[p+1:])
		if uint64(v) > uint64(len(b)) {
			return 0, 0, false, errAt(p, "zipmap: pair %d: %s length %d beyond the blob", z.n, what, v)
		}
		return int(v), 5, false, nil
	}
	return 0, 1, true, nil
}

// next returns the next field and value; ok is false after the end marker.
func (z *zmIter) next() (f, v []byte, ok bool, err error) {
	n, sz, end, err := z.zmLen("field")
	if err != nil {
		return nil, nil, false, err
	}
	if end {
		if z.p != len(z.b)-1 {
			return nil, nil, false, errAt(z.p, "zipmap: end marker at offset %d but %d bytes follow", z.p, len(z.b)-1-z.p)
		}
		if z.count < 254 && z.count != z.n {
			return nil, nil, false, errAt(0, "zipmap: zmlen %d but found %d pairs", z.count, z.n)
		}
		return nil, nil, false, nil
	}
	z.p += sz
	if n > len(z.b)-1-z.p {
		return nil, nil, false, errAt(z.p, "zipmap: pair %d: field of %d bytes beyond the blob", z.n, n)
	}
	f = z.b[z.p : z.p+n]
	z.p += n
	n, sz, end, err = z.zmLen("value")
	if err != nil {
		return nil, nil, false, err
	}
	if end {
		return nil, nil, false, errAt(z.p, "zipmap: pair %d: field without a value", z.n)
	}
	z.p += sz
	if z.p >= len(z.b)-1 {
		return nil, nil, false, errAt(z.p, "zipmap: pair %d: missing free byte", z.n)
	}
	free := int(z.b[z.p])
	z.p++
	if n+free > len(z.b)-1-z.p {
		return nil, nil, false, errAt(z.p, "zipmap: pair %d: value of %d bytes (+%d free) beyond the blob", z.n, n, free)
	}
	v = z.b[z.p : z.p+n]
	z.p += n + free
	z.n++
	return f, v, true, nil
}
