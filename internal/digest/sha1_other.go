//go:build !amd64 || purego

package digest

// useSHA1Block is false: sha1Sum and sha1Xor always use crypto/sha1.
const useSHA1Block = false

func sha1Block(out *sum, blk *[64]byte) { panic("digest: sha1Block without SHA-NI") }
