//go:build !amd64 || purego

package digest

// useSHA1Block is false: sha1Sum and sha1Xor always use crypto/sha1, and
// compress1 and compress2 the plain Go compression.
const useSHA1Block = false

func sha1Block(out *sum, blk *[64]byte) { panic("digest: sha1Block without SHA-NI") }

// sha1Block2 is block2Generic where there is no SHA-NI assembly.
func sha1Block2(outA, outB, inA, inB *sum, blkA, blkB *[64]byte) {
	block2Generic(outA, outB, inA, inB, blkA, blkB)
}
