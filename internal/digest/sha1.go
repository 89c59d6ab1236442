package digest

import (
	"crypto/sha1"
	"encoding/binary"
)

// SHA-1 fast path for the tiny inputs DEBUG DIGEST hashes (member names,
// values, 20-byte sums): an input of at most 55 bytes fits one padded
// 64-byte block, which is padded here on the stack as FIPS 180-4 §5.1.1
// prescribes and compressed by sha1Block (SHA-NI assembly on amd64, see
// sha1_amd64.s), skipping crypto/sha1's buffering. Longer inputs, and
// machines or builds (purego) without sha1Block, use crypto/sha1. The bulk
// of a digest goes through compress1 and compress2 instead (lanes.go).

// maxOneBlock is the longest input whose padding fits one block: the
// message, the 0x80 byte and the 8-byte bit length.
const maxOneBlock = 64 - 1 - 8

// sha1Sum returns SHA1(p).
func sha1Sum(p []byte) sum {
	if !useSHA1Block || len(p) > maxOneBlock {
		return sha1.Sum(p)
	}
	var blk [64]byte
	copy(blk[:], p)
	blk[len(p)] = 0x80
	binary.BigEndian.PutUint64(blk[56:], uint64(len(p))*8)
	var out sum
	sha1Block(&out, &blk)
	return out
}

// sha1Xor sets out to SHA1(a ⊕ b); out may be a or b.
func sha1Xor(out, a, b *sum) {
	if !useSHA1Block {
		var x sum
		for i := range x {
			x[i] = a[i] ^ b[i]
		}
		*out = sha1.Sum(x[:])
		return
	}
	// a and b are read whole before out is written, so aliasing is fine.
	var blk [64]byte
	le := binary.LittleEndian
	le.PutUint64(blk[0:], le.Uint64(a[0:])^le.Uint64(b[0:]))
	le.PutUint64(blk[8:], le.Uint64(a[8:])^le.Uint64(b[8:]))
	le.PutUint32(blk[16:], le.Uint32(a[16:])^le.Uint32(b[16:]))
	blk[20] = 0x80
	blk[63] = 20 * 8 // bit length 160, big-endian in blk[56:64]
	sha1Block(out, &blk)
}

// h0 is the initial hash value H(0) of FIPS 180-4 §5.3.1 in the form of a
// sum (big-endian words a..e): the state a message's first block starts
// from. Every compression below maps such a state and a block to the next
// state; after a message's final padded block the state is its digest.
var h0 = sum{
	0x67, 0x45, 0x23, 0x01, 0xef, 0xcd, 0xab, 0x89, 0x98, 0xba,
	0xdc, 0xfe, 0x10, 0x32, 0x54, 0x76, 0xc3, 0xd2, 0xe1, 0xf0,
}

// compress2 runs two independent compressions, *outA from (*inA, blkA)
// and *outB from (*inB, blkB), side by side on SHA-NI (sha1Block2). An out
// may alias any in.
func compress2(outA, outB, inA, inB *sum, blkA, blkB *[64]byte) {
	if useSHA1Block {
		sha1Block2(outA, outB, inA, inB, blkA, blkB)
		return
	}
	block2Generic(outA, outB, inA, inB, blkA, blkB)
}

// compress1 is one compression, for work that has no partner.
func compress1(out, in *sum, blk *[64]byte) {
	switch {
	case !useSHA1Block:
		blockGeneric(out, in, blk)
	case in == &h0:
		sha1Block(out, blk)
	default:
		// No one-lane routine takes a state: both lanes do the same work,
		// which costs about what one lane alone would.
		sha1Block2(out, out, in, in, blk, blk)
	}
}
