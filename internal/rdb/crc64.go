package rdb

import (
	"encoding/binary"
	"math/bits"
)

// crcPoly is the reflected form of the CRC-64 "Jones" polynomial
// 0xad93d23594c935a9 that Redis uses.
const crcPoly = 0x95AC9329AC4BC9B5

// crcTable holds slicing-by-16 tables for crcPoly; it is computed once and
// never written afterwards.
var crcTable = makeCRCTable()

func makeCRCTable() *[16][256]uint64 {
	t := new([16][256]uint64)
	for i := range 256 {
		c := uint64(i)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ crcPoly
			} else {
				c >>= 1
			}
		}
		t[0][i] = c
	}
	for i := range 256 {
		c := t[0][i]
		for k := 1; k < 16; k++ {
			c = t[0][c&0xff] ^ c>>8
			t[k][i] = c
		}
	}
	return t
}

// CRC64 continues Redis's CRC-64 (Jones, reflected, initial value 0, no
// final XOR) over p, starting from prev (0 to start). CRC64(0,
// []byte("123456789")) is 0xe9c6d914c4b8d9ca, and CRC64(CRC64(0, a), b)
// equals CRC64(0, a+b).
func CRC64(prev uint64, p []byte) uint64 {
	if haveCLMUL && len(p) >= crcFoldMin {
		// Fold all whole 16-byte blocks with carry-less multiplication
		// into 16 bytes with the same CRC, then finish with the tables.
		n := len(p) &^ 15
		var x [16]byte
		crcFold(prev, &p[0], n, &crcFoldK, &x)
		prev = crcTables(0, x[:])
		p = p[n:]
	}
	return crcTables(prev, p)
}

// crcFoldMin is the length from which folding pays for its fixed cost.
const crcFoldMin = 64

// crcFoldK are the folding constants for crcFold, in the reflected bit
// order of the CRC (bit i is the coefficient of x^(63-i)): folding a block
// L·x^64 + H forward by 128 bits multiplies L by x^192 and H by x^128,
// modulo the polynomial; PCLMULQDQ on reflected operands yields the
// product times x, hence the exponents 191 and 127.
var crcFoldK = [2]uint64{crcXPowMod(191), crcXPowMod(127)}

// crcXPowMod returns x^k modulo the CRC polynomial, bit-reflected.
func crcXPowMod(k int) uint64 {
	const poly = 0xad93d23594c935a9 // x^64 + this, normal bit order
	r := uint64(1)
	for range k {
		carry := r >> 63
		r <<= 1
		if carry != 0 {
			r ^= poly
		}
	}
	return bits.Reverse64(r)
}

// crcTables is CRC64 with slicing-by-16 tables only.
func crcTables(prev uint64, p []byte) uint64 {
	t := crcTable
	c := prev
	for len(p) >= 16 {
		a := c ^ binary.LittleEndian.Uint64(p)
		b := binary.LittleEndian.Uint64(p[8:])
		c = t[15][a&0xff] ^ t[14][a>>8&0xff] ^ t[13][a>>16&0xff] ^ t[12][a>>24&0xff] ^
			t[11][a>>32&0xff] ^ t[10][a>>40&0xff] ^ t[9][a>>48&0xff] ^ t[8][a>>56] ^
			t[7][b&0xff] ^ t[6][b>>8&0xff] ^ t[5][b>>16&0xff] ^ t[4][b>>24&0xff] ^
			t[3][b>>32&0xff] ^ t[2][b>>40&0xff] ^ t[1][b>>48&0xff] ^ t[0][b>>56]
		p = p[16:]
	}
	for len(p) >= 8 {
		c ^= binary.LittleEndian.Uint64(p)
		c = t[7][c&0xff] ^ t[6][c>>8&0xff] ^ t[5][c>>16&0xff] ^ t[4][c>>24&0xff] ^
			t[3][c>>32&0xff] ^ t[2][c>>40&0xff] ^ t[1][c>>48&0xff] ^ t[0][c>>56]
		p = p[8:]
	}
	for _, b := range p {
		c = t[0][byte(c)^b] ^ c>>8
	}
	return c
}
