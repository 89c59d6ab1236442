//go:build !amd64 || purego

package digest

const haveSHANI = false

func sha1Blocks(out *sum, p *byte, n int) { panic("digest: sha1Blocks without SHA-NI") }

func sha1Xor20(out, a, b *sum) { panic("digest: sha1Xor20 without SHA-NI") }

func sha1Blocks2(outA, outB *sum, pA, pB *byte) { panic("digest: sha1Blocks2 without SHA-NI") }

func sha1Xor20x2(outA, aA, bA, outB, aB, bB *sum) { panic("digest: sha1Xor20x2 without SHA-NI") }
