//go:build !purego

#include "textflag.h"

// SHA-1 of inputs that fit one block, with the SHA-NI instructions. The
// round sequence is the single-block body of blockSHANI in Go's crypto/sha1
// (sha1block_amd64.s; Copyright The Go Authors, BSD-style license), with
// SSE moves instead of VEX ones and the saved state kept in registers. The
// state lives as in blockSHANI: X0 = ABCD with A in the top lane, X5 = E in
// the top lane; X7 is the byte-reversal mask that loads big-endian message
// words and, at the end, stores the state big-endian.

// func cpuHasSHANI() bool
TEXT ·cpuHasSHANI(SB), NOSPLIT, $0-1
	MOVB $0, ret+0(FP)
	MOVL $0, AX
	CPUID
	CMPL AX, $7
	JLT  no
	MOVL $1, AX
	MOVL $0, CX
	CPUID
	MOVL CX, R8
	ANDL $0x00080200, R8 // SSSE3 (bit 9), SSE4.1 (bit 19)
	CMPL R8, $0x00080200
	JNE  no
	MOVL $7, AX
	MOVL $0, CX
	CPUID
	BTL  $29, BX // SHA
	JCC  no
	MOVB $1, ret+0(FP)
no:
	RET

// func sha1Block(out *sum, blk *[64]byte)
//
// out = SHA-1 of the message whose padded form is the one block blk.
TEXT ·sha1Block(SB), NOSPLIT, $0-16
	MOVQ out+0(FP), DI
	MOVQ blk+8(FP), SI
	MOVOU shuffle_mask<>+0(SB), X7
	MOVOU init_abcd<>+0(SB), X0
	MOVOU init_e<>+0(SB), X5
	MOVO  X5, X8
	MOVO  X0, X9

	// Rounds 0-3
	MOVOU     (SI), X1
	PSHUFB    X7, X1
	PADDD     X1, X5
	MOVO      X0, X6
	SHA1RNDS4 $0x00, X5, X0

	// Rounds 4-7
	MOVOU     16(SI), X2
	PSHUFB    X7, X2
	SHA1NEXTE X2, X6
	MOVO      X0, X5
	SHA1RNDS4 $0x00, X6, X0
	SHA1MSG1  X2, X1

	// Rounds 8-11
	MOVOU     32(SI), X3
	PSHUFB    X7, X3
	SHA1NEXTE X3, X5
	MOVO      X0, X6
	SHA1RNDS4 $0x00, X5, X0
	SHA1MSG1  X3, X2
	PXOR      X3, X1

	// Rounds 12-15
	MOVOU     48(SI), X4
	PSHUFB    X7, X4
	SHA1NEXTE X4, X6
	MOVO      X0, X5
	SHA1MSG2  X4, X1
	SHA1RNDS4 $0x00, X6, X0
	SHA1MSG1  X4, X3
	PXOR      X4, X2

	// Rounds 16-19
	SHA1NEXTE X1, X5
	MOVO      X0, X6
	SHA1MSG2  X1, X2
	SHA1RNDS4 $0x00, X5, X0
	SHA1MSG1  X1, X4
	PXOR      X1, X3

	// Rounds 20-23
	SHA1NEXTE X2, X6
	MOVO      X0, X5
	SHA1MSG2  X2, X3
	SHA1RNDS4 $0x01, X6, X0
	SHA1MSG1  X2, X1
	PXOR      X2, X4

	// Rounds 24-27
	SHA1NEXTE X3, X5
	MOVO      X0, X6
	SHA1MSG2  X3, X4
	SHA1RNDS4 $0x01, X5, X0
	SHA1MSG1  X3, X2
	PXOR      X3, X1

	// Rounds 28-31
	SHA1NEXTE X4, X6
	MOVO      X0, X5
	SHA1MSG2  X4, X1
	SHA1RNDS4 $0x01, X6, X0
	SHA1MSG1  X4, X3
	PXOR      X4, X2

	// Rounds 32-35
	SHA1NEXTE X1, X5
	MOVO      X0, X6
	SHA1MSG2  X1, X2
	SHA1RNDS4 $0x01, X5, X0
	SHA1MSG1  X1, X4
	PXOR      X1, X3

	// Rounds 36-39
	SHA1NEXTE X2, X6
	MOVO      X0, X5
	SHA1MSG2  X2, X3
	SHA1RNDS4 $0x01, X6, X0
	SHA1MSG1  X2, X1
	PXOR      X2, X4

	// Rounds 40-43
	SHA1NEXTE X3, X5
	MOVO      X0, X6
	SHA1MSG2  X3, X4
	SHA1RNDS4 $0x02, X5, X0
	SHA1MSG1  X3, X2
	PXOR      X3, X1

	// Rounds 44-47
	SHA1NEXTE X4, X6
	MOVO      X0, X5
	SHA1MSG2  X4, X1
	SHA1RNDS4 $0x02, X6, X0
	SHA1MSG1  X4, X3
	PXOR      X4, X2

	// Rounds 48-51
	SHA1NEXTE X1, X5
	MOVO      X0, X6
	SHA1MSG2  X1, X2
	SHA1RNDS4 $0x02, X5, X0
	SHA1MSG1  X1, X4
	PXOR      X1, X3

	// Rounds 52-55
	SHA1NEXTE X2, X6
	MOVO      X0, X5
	SHA1MSG2  X2, X3
	SHA1RNDS4 $0x02, X6, X0
	SHA1MSG1  X2, X1
	PXOR      X2, X4

	// Rounds 56-59
	SHA1NEXTE X3, X5
	MOVO      X0, X6
	SHA1MSG2  X3, X4
	SHA1RNDS4 $0x02, X5, X0
	SHA1MSG1  X3, X2
	PXOR      X3, X1

	// Rounds 60-63
	SHA1NEXTE X4, X6
	MOVO      X0, X5
	SHA1MSG2  X4, X1
	SHA1RNDS4 $0x03, X6, X0
	SHA1MSG1  X4, X3
	PXOR      X4, X2

	// Rounds 64-67
	SHA1NEXTE X1, X5
	MOVO      X0, X6
	SHA1MSG2  X1, X2
	SHA1RNDS4 $0x03, X5, X0
	SHA1MSG1  X1, X4
	PXOR      X1, X3

	// Rounds 68-71
	SHA1NEXTE X2, X6
	MOVO      X0, X5
	SHA1MSG2  X2, X3
	SHA1RNDS4 $0x03, X6, X0
	PXOR      X2, X4

	// Rounds 72-75
	SHA1NEXTE X3, X5
	MOVO      X0, X6
	SHA1MSG2  X3, X4
	SHA1RNDS4 $0x03, X5, X0

	// Rounds 76-79
	SHA1NEXTE X4, X6
	MOVO      X0, X5
	SHA1RNDS4 $0x03, X6, X0

	// Add the saved E and ABCD
	SHA1NEXTE X8, X5
	PADDD     X9, X0

	// Store the state big-endian
	PSHUFB X7, X0
	MOVOU  X0, (DI)
	PEXTRD $0x03, X5, AX
	BSWAPL AX
	MOVL   AX, 16(DI)
	RET

// func sha1Xor20(out, a, b *sum)
//
// out = SHA-1 of the 20 bytes a XOR b (out may be a or b). The padded
// block is built in registers: the message words in X1-X4 are, after the
// byte reversal, W3..W0 = a^b, W7..W4 = (0, 0, 0x80000000, a^b[16:20]),
// W11..W8 = 0 and W15..W12 = (160, 0, 0, 0), lowest lane first.
TEXT ·sha1Xor20(SB), NOSPLIT, $0-24
	MOVQ out+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVOU shuffle_mask<>+0(SB), X7
	MOVOU init_abcd<>+0(SB), X0
	MOVOU init_e<>+0(SB), X5
	MOVO  X5, X8
	MOVO  X0, X9

	MOVOU  (SI), X1
	MOVOU  (DX), X2
	PXOR   X2, X1
	PSHUFB X7, X1
	MOVL   16(SI), AX
	XORL   16(DX), AX
	MOVL   AX, X2
	MOVL   $0x80, CX
	PINSRD $0x01, CX, X2
	PSHUFB X7, X2
	PXOR   X3, X3
	MOVL   $160, CX
	MOVL   CX, X4

	// Rounds 0-3
	PADDD     X1, X5
	MOVO      X0, X6
	SHA1RNDS4 $0x00, X5, X0

	// Rounds 4-7
	SHA1NEXTE X2, X6
	MOVO      X0, X5
	SHA1RNDS4 $0x00, X6, X0
	SHA1MSG1  X2, X1

	// Rounds 8-11
	SHA1NEXTE X3, X5
	MOVO      X0, X6
	SHA1RNDS4 $0x00, X5, X0
	SHA1MSG1  X3, X2
	PXOR      X3, X1

	// Rounds 12-15
	SHA1NEXTE X4, X6
	MOVO      X0, X5
	SHA1MSG2  X4, X1
	SHA1RNDS4 $0x00, X6, X0
	SHA1MSG1  X4, X3
	PXOR      X4, X2

	// Rounds 16-19
	SHA1NEXTE X1, X5
	MOVO      X0, X6
	SHA1MSG2  X1, X2
	SHA1RNDS4 $0x00, X5, X0
	SHA1MSG1  X1, X4
	PXOR      X1, X3

	// Rounds 20-23
	SHA1NEXTE X2, X6
	MOVO      X0, X5
	SHA1MSG2  X2, X3
	SHA1RNDS4 $0x01, X6, X0
	SHA1MSG1  X2, X1
	PXOR      X2, X4

	// Rounds 24-27
	SHA1NEXTE X3, X5
	MOVO      X0, X6
	SHA1MSG2  X3, X4
	SHA1RNDS4 $0x01, X5, X0
	SHA1MSG1  X3, X2
	PXOR      X3, X1

	// Rounds 28-31
	SHA1NEXTE X4, X6
	MOVO      X0, X5
	SHA1MSG2  X4, X1
	SHA1RNDS4 $0x01, X6, X0
	SHA1MSG1  X4, X3
	PXOR      X4, X2

	// Rounds 32-35
	SHA1NEXTE X1, X5
	MOVO      X0, X6
	SHA1MSG2  X1, X2
	SHA1RNDS4 $0x01, X5, X0
	SHA1MSG1  X1, X4
	PXOR      X1, X3

	// Rounds 36-39
	SHA1NEXTE X2, X6
	MOVO      X0, X5
	SHA1MSG2  X2, X3
	SHA1RNDS4 $0x01, X6, X0
	SHA1MSG1  X2, X1
	PXOR      X2, X4

	// Rounds 40-43
	SHA1NEXTE X3, X5
	MOVO      X0, X6
	SHA1MSG2  X3, X4
	SHA1RNDS4 $0x02, X5, X0
	SHA1MSG1  X3, X2
	PXOR      X3, X1

	// Rounds 44-47
	SHA1NEXTE X4, X6
	MOVO      X0, X5
	SHA1MSG2  X4, X1
	SHA1RNDS4 $0x02, X6, X0
	SHA1MSG1  X4, X3
	PXOR      X4, X2

	// Rounds 48-51
	SHA1NEXTE X1, X5
	MOVO      X0, X6
	SHA1MSG2  X1, X2
	SHA1RNDS4 $0x02, X5, X0
	SHA1MSG1  X1, X4
	PXOR      X1, X3

	// Rounds 52-55
	SHA1NEXTE X2, X6
	MOVO      X0, X5
	SHA1MSG2  X2, X3
	SHA1RNDS4 $0x02, X6, X0
	SHA1MSG1  X2, X1
	PXOR      X2, X4

	// Rounds 56-59
	SHA1NEXTE X3, X5
	MOVO      X0, X6
	SHA1MSG2  X3, X4
	SHA1RNDS4 $0x02, X5, X0
	SHA1MSG1  X3, X2
	PXOR      X3, X1

	// Rounds 60-63
	SHA1NEXTE X4, X6
	MOVO      X0, X5
	SHA1MSG2  X4, X1
	SHA1RNDS4 $0x03, X6, X0
	SHA1MSG1  X4, X3
	PXOR      X4, X2

	// Rounds 64-67
	SHA1NEXTE X1, X5
	MOVO      X0, X6
	SHA1MSG2  X1, X2
	SHA1RNDS4 $0x03, X5, X0
	SHA1MSG1  X1, X4
	PXOR      X1, X3

	// Rounds 68-71
	SHA1NEXTE X2, X6
	MOVO      X0, X5
	SHA1MSG2  X2, X3
	SHA1RNDS4 $0x03, X6, X0
	PXOR      X2, X4

	// Rounds 72-75
	SHA1NEXTE X3, X5
	MOVO      X0, X6
	SHA1MSG2  X3, X4
	SHA1RNDS4 $0x03, X5, X0

	// Rounds 76-79
	SHA1NEXTE X4, X6
	MOVO      X0, X5
	SHA1RNDS4 $0x03, X6, X0

	// Add the saved E and ABCD
	SHA1NEXTE X8, X5
	PADDD     X9, X0

	// Store the state big-endian
	PSHUFB X7, X0
	MOVOU  X0, (DI)
	PEXTRD $0x03, X5, AX
	BSWAPL AX
	MOVL   AX, 16(DI)
	RET

DATA shuffle_mask<>+0(SB)/8, $0x08090a0b0c0d0e0f
DATA shuffle_mask<>+8(SB)/8, $0x0001020304050607
GLOBL shuffle_mask<>(SB), RODATA, $16

// The initial state as loaded by blockSHANI: ABCD = H3 H2 H1 H0 (lowest
// lane first), E = H4 in the top lane.
DATA init_abcd<>+0(SB)/4, $0x10325476
DATA init_abcd<>+4(SB)/4, $0x98badcfe
DATA init_abcd<>+8(SB)/4, $0xefcdab89
DATA init_abcd<>+12(SB)/4, $0x67452301
GLOBL init_abcd<>(SB), RODATA, $16

DATA init_e<>+0(SB)/4, $0
DATA init_e<>+4(SB)/4, $0
DATA init_e<>+8(SB)/4, $0
DATA init_e<>+12(SB)/4, $0xc3d2e1f0
GLOBL init_e<>(SB), RODATA, $16
