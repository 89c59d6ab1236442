package rdb

import "encoding/binary"

// RDB lengths, read by the decoder (a value in memory) and the Reader (a
// stream) alike: the first byte's top two bits say how long the length
// is (rdbLoadLenByRef).

// lenSize is how many bytes a length whose first byte is c occupies: 1
// (6-bit length, or an 11xxxxxx string encoding), 2 (14-bit), 5 (32-bit),
// 9 (64-bit), or 0 when c starts no length.
func lenSize(c byte) int {
	switch c >> 6 {
	case 0, 3:
		return 1
	case 1:
		return 2
	}
	switch c {
	case 0x80:
		return 5
	case 0x81:
		return 9
	}
	return 0
}

// parseLen decodes a length from its lenSize(b[0]) bytes; enc is true for
// the 11xxxxxx string encodings (n is then the low 6 bits).
func parseLen(b []byte) (n uint64, enc bool) {
	c := b[0]
	switch c >> 6 {
	case 0:
		return uint64(c), false
	case 1:
		return uint64(c&0x3f)<<8 | uint64(b[1]), false
	case 3:
		return uint64(c & 0x3f), true
	}
	if c == 0x80 {
		return uint64(binary.BigEndian.Uint32(b[1:])), false
	}
	return binary.BigEndian.Uint64(b[1:]), false
}

// at is the offset of the next byte, for errors.
func (d *decoder) at() int { return d.p }

// skipStr reads an RDB string and drops it.
func (d *decoder) skipStr() error {
	_, _, _, _, err := d.str()
	return err
}
