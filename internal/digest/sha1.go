package digest

import (
	"crypto/sha1"
	"encoding/binary"
)

// DEBUG DIGEST hashes millions of inputs shorter than a SHA-1 block (member
// names, values, 20-byte intermediate sums). For those, sha1.Sum spends
// about as much time on its generic buffering, padding and output as on
// the compression itself, so on CPUs with the SHA-NI instructions inputs
// of up to 119 bytes are padded here into one or two blocks on the stack,
// and 20-byte inputs are padded in registers, and compressed by the
// assembly in sha1_amd64.s. Everything else goes through crypto/sha1.

// maxTwoBlocks is the longest input whose padded form fits two 64-byte
// blocks (a 64-bit length and the 0x80 byte follow the input).
const maxTwoBlocks = 2*64 - 9

// sha1Sum returns SHA1(p).
func sha1Sum(p []byte) sum {
	if !haveSHANI || len(p) > maxTwoBlocks {
		return sha1.Sum(p)
	}
	var out sum
	if len(p) <= maxOneBlock {
		var blk [64]byte
		copy(blk[:], p)
		blk[len(p)] = 0x80
		binary.BigEndian.PutUint64(blk[56:], uint64(len(p))*8)
		sha1Blocks(&out, &blk[0], 1)
		return out
	}
	var blk [128]byte
	copy(blk[:], p)
	blk[len(p)] = 0x80
	binary.BigEndian.PutUint64(blk[120:], uint64(len(p))*8)
	sha1Blocks(&out, &blk[0], 2)
	return out
}

// sha1Xor sets out to SHA1(a ⊕ b); out may be a or b.
func sha1Xor(out, a, b *sum) {
	if haveSHANI {
		sha1Xor20(out, a, b)
		return
	}
	var x sum
	for i := range x {
		x[i] = a[i] ^ b[i]
	}
	*out = sha1.Sum(x[:])
}
