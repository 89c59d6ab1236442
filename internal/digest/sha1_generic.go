package digest

import (
	"encoding/binary"
	"math/bits"
)

// blockGeneric is the SHA-1 compression of FIPS 180-4 §6.1.2 in plain Go:
// *out is the state after block *blk from state *in (both as sums). It
// stands in for the SHA-NI routines where they cannot run; out may alias
// in.
func blockGeneric(out, in *sum, blk *[64]byte) {
	be := binary.BigEndian
	var w [16]uint32
	for i := range w {
		w[i] = be.Uint32(blk[4*i:])
	}
	h := [5]uint32{be.Uint32(in[0:]), be.Uint32(in[4:]), be.Uint32(in[8:]), be.Uint32(in[12:]), be.Uint32(in[16:])}
	a, b, c, d, e := h[0], h[1], h[2], h[3], h[4]
	// W[t] for t >= 16 overwrites W[t-16] in the 16-word ring.
	next := func(t int) uint32 {
		if t < 16 {
			return w[t]
		}
		x := bits.RotateLeft32(w[(t-3)&15]^w[(t-8)&15]^w[(t-14)&15]^w[t&15], 1)
		w[t&15] = x
		return x
	}
	for t := 0; t < 20; t++ {
		f := b&c | ^b&d // Ch
		a, b, c, d, e = bits.RotateLeft32(a, 5)+f+e+0x5a827999+next(t), a, bits.RotateLeft32(b, 30), c, d
	}
	for t := 20; t < 40; t++ {
		f := b ^ c ^ d // Parity
		a, b, c, d, e = bits.RotateLeft32(a, 5)+f+e+0x6ed9eba1+next(t), a, bits.RotateLeft32(b, 30), c, d
	}
	for t := 40; t < 60; t++ {
		f := b&c | b&d | c&d // Maj
		a, b, c, d, e = bits.RotateLeft32(a, 5)+f+e+0x8f1bbcdc+next(t), a, bits.RotateLeft32(b, 30), c, d
	}
	for t := 60; t < 80; t++ {
		f := b ^ c ^ d // Parity
		a, b, c, d, e = bits.RotateLeft32(a, 5)+f+e+0xca62c1d6+next(t), a, bits.RotateLeft32(b, 30), c, d
	}
	be.PutUint32(out[0:], h[0]+a)
	be.PutUint32(out[4:], h[1]+b)
	be.PutUint32(out[8:], h[2]+c)
	be.PutUint32(out[12:], h[3]+d)
	be.PutUint32(out[16:], h[4]+e)
}

// block2Generic is sha1Block2 in plain Go: two blockGeneric, each out
// written only after both ins are read.
func block2Generic(outA, outB, inA, inB *sum, blkA, blkB *[64]byte) {
	var a, b sum
	blockGeneric(&a, inA, blkA)
	blockGeneric(&b, inB, blkB)
	*outA, *outB = a, b
}
