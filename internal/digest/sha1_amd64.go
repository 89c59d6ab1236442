//go:build !purego

package digest

// sha1Blocks sets out to the SHA-1 of the message whose padded form is
// the n >= 1 64-byte blocks at p. Only call it when haveSHANI is true.
//
//go:noescape
func sha1Blocks(out *sum, p *byte, n int)

// sha1Xor20 sets out to the SHA-1 of the 20 bytes a XOR b; out may be a
// or b. Only call it when haveSHANI is true.
//
//go:noescape
func sha1Xor20(out, a, b *sum)

// sha1Blocks2 is sha1Blocks(outA, pA, 1) and sha1Blocks(outB, pB, 1),
// interleaved.
//
//go:noescape
func sha1Blocks2(outA, outB *sum, pA, pB *byte)

// sha1Xor20x2 is sha1Xor20(outA, aA, bA) and sha1Xor20(outB, aB, bB),
// interleaved.
//
//go:noescape
func sha1Xor20x2(outA, aA, bA, outB, aB, bB *sum)

func cpuHasSHANI() bool

var haveSHANI = cpuHasSHANI()
