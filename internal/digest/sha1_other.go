//go:build !amd64 || purego

package digest

const haveSHANI = false

func sha1Block(out *sum, blk *[64]byte) { panic("digest: sha1Block without SHA-NI") }

func sha1Xor20(out, a, b *sum) { panic("digest: sha1Xor20 without SHA-NI") }
