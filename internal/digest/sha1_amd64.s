//go:build !purego

// SHA-1 compression with the x86 SHA extensions: one block from H(0)
// (sha1Block), or two independent blocks from given states side by side
// (sha1Block2). Written for redback from the instruction descriptions in
// the Intel SDM (SHA1RNDS4, SHA1NEXTE, SHA1MSG1, SHA1MSG2, PSHUFB, PADDD,
// PXOR, PEXTRD, PINSRD, CPUID) and the SHA-1 definition in FIPS 180-4
// only; not copied from or derived from any other implementation.
//
// Layout, per the SDM: the working variables a, b, c, d share one XMM
// register with a in bits 127:96 and d in bits 31:0; a message register
// M(k) holds the schedule words W[4k..4k+3], W[4k] in bits 127:96.
//
//   SHA1RNDS4 $f, S, ABCD   four rounds with function/constant f (0 for
//                           rounds 0-19, 1 for 20-39, ...); S holds
//                           W[t]+e, W[t+1], W[t+2], W[t+3].
//   SHA1NEXTE M, X          X = M with M[127:96] += X[127:96] ROL 30:
//                           with X the ABCD from before the previous four
//                           rounds, its a ROL 30 is the e after them.
//   M(k) = SHA1MSG2(SHA1MSG1(M(k-4), M(k-3)) XOR M(k-2), M(k-1)) is
//   W[t] = ROL1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), t = 4k..4k+3.
//
// Go operand order: sources first, destination last.

#include "textflag.h"

// PSHUFB mask reversing all 16 bytes: turns big-endian message words into
// the layout above and the state back into big-endian output.
DATA bswap128<>+0(SB)/8, $0x08090a0b0c0d0e0f
DATA bswap128<>+8(SB)/8, $0x0001020304050607
GLOBL bswap128<>(SB), RODATA|NOPTR, $16

// H(0) words a..d (dwords d, c, b, a from the low end).
DATA initABCD<>+0(SB)/8, $0x98badcfe10325476
DATA initABCD<>+8(SB)/8, $0x67452301efcdab89
GLOBL initABCD<>(SB), RODATA|NOPTR, $16

// H(0) word e in bits 127:96, zero below.
DATA initE<>+0(SB)/8, $0
DATA initE<>+8(SB)/8, $0xc3d2e1f000000000
GLOBL initE<>(SB), RODATA|NOPTR, $16

// QUADL(f, m, abcd, t, e): rounds 4k..4k+3 of one lane with message
// register m = M(k), k >= 1: abcd = current ABCD, e = ABCD before the
// previous QUAD (kept for the next e), t scratch.
#define QUADL(f, m, abcd, t, e) \
	MOVO      e, t; \
	MOVO      abcd, e; \
	SHA1NEXTE m, t; \
	SHA1RNDS4 $f, t, abcd

// QUAD(f, m): QUADL of sha1Block's lane, X0 = ABCD, X1 scratch, X2 e.
#define QUAD(f, m) QUADL(f, m, X0, X1, X2)

// SCHED(m0, m1, m2, m3): m0 = M(k) from m0..m3 = M(k-4)..M(k-1).
#define SCHED(m0, m1, m2, m3) \
	SHA1MSG1 m1, m0; \
	PXOR     m2, m0; \
	SHA1MSG2 m3, m0

// func sha1Block(out *sum, blk *[64]byte)
TEXT ·sha1Block(SB), NOSPLIT, $0-16
	MOVQ  out+0(FP), DI
	MOVQ  blk+8(FP), SI
	MOVOU bswap128<>(SB), X7
	MOVOU initE<>(SB), X8
	MOVOU initABCD<>(SB), X9

	// M(0)..M(3) = W[0..15] in X3..X6.
	MOVOU  0(SI), X3
	PSHUFB X7, X3
	MOVOU  16(SI), X4
	PSHUFB X7, X4
	MOVOU  32(SI), X5
	PSHUFB X7, X5
	MOVOU  48(SI), X6
	PSHUFB X7, X6

	// Rounds 0-3: e comes from H(0).
	MOVO      X9, X0
	MOVO      X0, X2
	MOVO      X8, X1
	PADDD     X3, X1
	SHA1RNDS4 $0, X1, X0

	QUAD(0, X4) // rounds 4-7
	QUAD(0, X5)
	QUAD(0, X6)
	SCHED(X3, X4, X5, X6) // M(4)
	QUAD(0, X3)           // rounds 16-19

	SCHED(X4, X5, X6, X3)
	QUAD(1, X4) // rounds 20-23
	SCHED(X5, X6, X3, X4)
	QUAD(1, X5)
	SCHED(X6, X3, X4, X5)
	QUAD(1, X6)
	SCHED(X3, X4, X5, X6)
	QUAD(1, X3)
	SCHED(X4, X5, X6, X3)
	QUAD(1, X4) // rounds 36-39

	SCHED(X5, X6, X3, X4)
	QUAD(2, X5) // rounds 40-43
	SCHED(X6, X3, X4, X5)
	QUAD(2, X6)
	SCHED(X3, X4, X5, X6)
	QUAD(2, X3)
	SCHED(X4, X5, X6, X3)
	QUAD(2, X4)
	SCHED(X5, X6, X3, X4)
	QUAD(2, X5) // rounds 56-59

	SCHED(X6, X3, X4, X5)
	QUAD(3, X6) // rounds 60-63
	SCHED(X3, X4, X5, X6)
	QUAD(3, X3)
	SCHED(X4, X5, X6, X3)
	QUAD(3, X4)
	SCHED(X5, X6, X3, X4)
	QUAD(3, X5)
	SCHED(X6, X3, X4, X5)
	QUAD(3, X6) // rounds 76-79

	// H(1) = H(0) + working variables; the final e is X2's a ROL 30.
	SHA1NEXTE X8, X2
	PADDD     X9, X0

	// Big-endian output: a..d, then e.
	PSHUFB X7, X0
	MOVOU  X0, 0(DI)
	PEXTRD $3, X2, AX
	BSWAPL AX
	MOVL   AX, 16(DI)
	RET

// Two lanes: sha1Block2 runs two independent compressions, lane A in
// X0..X6 exactly as sha1Block's (X0 ABCD, X1 scratch, X2 e, X3..X6 the
// message) and lane B in X8..X14, X7 the byte-swap mask. Each SHA1RNDS4
// waits for the one before it in its lane, so a lone lane leaves the SHA
// unit idle most of the time; issuing the other lane's QUAD in between
// fills that wait. The input states are read twice (at the start and for
// the final addition) instead of being kept in registers: 16 XMM registers
// hold two lanes but not their H(i-1) as well.

// QUAD2(f, ma, mb): QUAD of lane A with M(k) in ma, then of lane B with mb.
#define QUAD2(f, ma, mb) \
	QUADL(f, ma, X0, X1, X2); \
	QUADL(f, mb, X8, X9, X10)

// SCHED2: SCHED of lane A on a0..a3 and of lane B on b0..b3.
#define SCHED2(a0, a1, a2, a3, b0, b1, b2, b3) \
	SCHED(a0, a1, a2, a3); \
	SCHED(b0, b1, b2, b3)

// LOADE(p, x): x[127:96] = word e of the big-endian state at p, for
// PADDD with M(0) (x[95:0] = 0) and for the final SHA1NEXTE.
#define LOADE(p, x) \
	MOVL   16(p), CX; \
	BSWAPL CX; \
	PXOR   x, x; \
	PINSRD $3, CX, x

// func sha1Block2(outA, outB, inA, inB *sum, blkA, blkB *[64]byte)
TEXT ·sha1Block2(SB), NOSPLIT, $0-48
	MOVQ  inA+16(FP), AX
	MOVQ  inB+24(FP), BX
	MOVQ  blkA+32(FP), SI
	MOVQ  blkB+40(FP), DI
	MOVOU bswap128<>(SB), X7

	// M(0)..M(3): lane A in X3..X6, lane B in X11..X14.
	MOVOU  0(SI), X3
	PSHUFB X7, X3
	MOVOU  0(DI), X11
	PSHUFB X7, X11
	MOVOU  16(SI), X4
	PSHUFB X7, X4
	MOVOU  16(DI), X12
	PSHUFB X7, X12
	MOVOU  32(SI), X5
	PSHUFB X7, X5
	MOVOU  32(DI), X13
	PSHUFB X7, X13
	MOVOU  48(SI), X6
	PSHUFB X7, X6
	MOVOU  48(DI), X14
	PSHUFB X7, X14

	// Rounds 0-3 from the input states: ABCD byte-swapped like the
	// message, e added to W[0].
	MOVOU     0(AX), X0
	PSHUFB    X7, X0
	MOVO      X0, X2
	LOADE(AX, X1)
	PADDD     X3, X1
	SHA1RNDS4 $0, X1, X0
	MOVOU     0(BX), X8
	PSHUFB    X7, X8
	MOVO      X8, X10
	LOADE(BX, X9)
	PADDD     X11, X9
	SHA1RNDS4 $0, X9, X8

	QUAD2(0, X4, X12) // rounds 4-7
	QUAD2(0, X5, X13)
	QUAD2(0, X6, X14)
	SCHED2(X3, X4, X5, X6, X11, X12, X13, X14)
	QUAD2(0, X3, X11) // rounds 16-19

	SCHED2(X4, X5, X6, X3, X12, X13, X14, X11)
	QUAD2(1, X4, X12) // rounds 20-23
	SCHED2(X5, X6, X3, X4, X13, X14, X11, X12)
	QUAD2(1, X5, X13)
	SCHED2(X6, X3, X4, X5, X14, X11, X12, X13)
	QUAD2(1, X6, X14)
	SCHED2(X3, X4, X5, X6, X11, X12, X13, X14)
	QUAD2(1, X3, X11)
	SCHED2(X4, X5, X6, X3, X12, X13, X14, X11)
	QUAD2(1, X4, X12) // rounds 36-39

	SCHED2(X5, X6, X3, X4, X13, X14, X11, X12)
	QUAD2(2, X5, X13) // rounds 40-43
	SCHED2(X6, X3, X4, X5, X14, X11, X12, X13)
	QUAD2(2, X6, X14)
	SCHED2(X3, X4, X5, X6, X11, X12, X13, X14)
	QUAD2(2, X3, X11)
	SCHED2(X4, X5, X6, X3, X12, X13, X14, X11)
	QUAD2(2, X4, X12)
	SCHED2(X5, X6, X3, X4, X13, X14, X11, X12)
	QUAD2(2, X5, X13) // rounds 56-59

	SCHED2(X6, X3, X4, X5, X14, X11, X12, X13)
	QUAD2(3, X6, X14) // rounds 60-63
	SCHED2(X3, X4, X5, X6, X11, X12, X13, X14)
	QUAD2(3, X3, X11)
	SCHED2(X4, X5, X6, X3, X12, X13, X14, X11)
	QUAD2(3, X4, X12)
	SCHED2(X5, X6, X3, X4, X13, X14, X11, X12)
	QUAD2(3, X5, X13)
	SCHED2(X6, X3, X4, X5, X14, X11, X12, X13)
	QUAD2(3, X6, X14) // rounds 76-79

	// H(i) = H(i-1) + working variables, with H(i-1) read again (into the
	// now free message registers); both results are in registers before
	// either is stored, so an out may alias any in.
	MOVOU     0(AX), X3
	PSHUFB    X7, X3
	PADDD     X3, X0
	PSHUFB    X7, X0
	LOADE(AX, X4)
	SHA1NEXTE X4, X2
	PEXTRD    $3, X2, SI
	BSWAPL    SI
	MOVOU     0(BX), X11
	PSHUFB    X7, X11
	PADDD     X11, X8
	PSHUFB    X7, X8
	LOADE(BX, X12)
	SHA1NEXTE X12, X10
	PEXTRD    $3, X10, DI
	BSWAPL    DI
	MOVQ      outA+0(FP), AX
	MOVQ      outB+8(FP), BX
	MOVOU     X0, 0(AX)
	MOVL      SI, 16(AX)
	MOVOU     X8, 0(BX)
	MOVL      DI, 16(BX)
	RET

// func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET
