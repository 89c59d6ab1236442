//go:build !purego

package digest

// sha1Block sets out to the SHA-1 of the message whose padded form is the
// one block blk. Only call it when haveSHANI is true.
//
//go:noescape
func sha1Block(out *sum, blk *[64]byte)

// sha1Xor20 sets out to the SHA-1 of the 20 bytes a XOR b; out may be a
// or b. Only call it when haveSHANI is true.
//
//go:noescape
func sha1Xor20(out, a, b *sum)

func cpuHasSHANI() bool

var haveSHANI = cpuHasSHANI()
