package rdb

import "encoding/binary"

// intset is a checked intset blob.
type intset struct {
	b   []byte
	enc int
	n   int
}

// parseIntset checks an intset: encoding 2, 4 or 8, size exactly
// 8+length*encoding, at least one element, strictly ascending.
func parseIntset(b []byte) (intset, error) {
	if len(b) < 8 {
		return intset{}, errAt(0, "intset: %d bytes is shorter than the 8-byte header", len(b))
	}
	enc := binary.LittleEndian.Uint32(b)
	if enc != 2 && enc != 4 && enc != 8 {
		return intset{}, errAt(0, "intset: encoding %d, want 2, 4 or 8", enc)
	}
	n := uint64(binary.LittleEndian.Uint32(b[4:]))
	if 8+n*uint64(enc) != uint64(len(b)) {
		return intset{}, errAt(4, "intset: length %d x %d bytes does not match blob size %d", n, enc, len(b))
	}
	if n == 0 {
		return intset{}, errAt(4, "intset: empty")
	}
	s := intset{b: b, enc: int(enc), n: int(n)}
	prev := s.at(0)
	for i := 1; i < s.n; i++ {
		v := s.at(i)
		if v <= prev {
			return intset{}, errAt(8+i*s.enc, "intset: element %d (%d) not above element %d (%d)", i, v, i-1, prev)
		}
		prev = v
	}
	return s, nil
}

// at returns element i.
func (s *intset) at(i int) int64 {
	p := s.b[8+i*s.enc:]
	switch s.enc {
	case 2:
		return int64(int16(binary.LittleEndian.Uint16(p)))
	case 4:
		return int64(int32(binary.LittleEndian.Uint32(p)))
	}
	return int64(binary.LittleEndian.Uint64(p))
}
