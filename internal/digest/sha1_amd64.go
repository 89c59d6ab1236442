//go:build !purego

package digest

// useSHA1Block reports whether the CPU has the SHA extensions
// (CPUID.(EAX=7,ECX=0):EBX bit 29) plus SSSE3 (CPUID.1:ECX bit 9, for
// PSHUFB) and SSE4.1 (CPUID.1:ECX bit 19, for PEXTRD and PINSRD) that
// sha1Block and sha1Block2 use.
var useSHA1Block = hasSHANI()

func hasSHANI() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	_, ebx7, _, _ := cpuid(7, 0)
	const (
		ssse3 = 1 << 9
		sse41 = 1 << 19
		sha   = 1 << 29
	)
	return ecx1&ssse3 != 0 && ecx1&sse41 != 0 && ebx7&sha != 0
}

// cpuid executes CPUID with EAX=leaf, ECX=sub.
func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// sha1Block sets *out to the SHA-1 digest whose final (and only) padded
// block is *blk: one compression from the initial hash value H(0), output
// as big-endian words. Requires useSHA1Block.
//
//go:noescape
func sha1Block(out *sum, blk *[64]byte)

// sha1Block2 runs two independent compressions side by side: *outA is the
// state after block *blkA from state *inA, *outB likewise from *inB and
// *blkB. States are sums (big-endian words a..e): h0 before a message's
// first block, its digest after the final padded one. An out may alias
// any in. Requires useSHA1Block.
//
//go:noescape
func sha1Block2(outA, outB, inA, inB *sum, blkA, blkB *[64]byte)
