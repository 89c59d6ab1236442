//go:build !purego

#include "textflag.h"

// func cpuHasCLMUL() bool
TEXT ·cpuHasCLMUL(SB), NOSPLIT, $0-1
	MOVL $1, AX
	MOVL $0, CX
	CPUID
	SHRL $1, CX // PCLMULQDQ is bit 1
	ANDL $1, CX
	MOVB CX, ret+0(FP)
	RET

// func crcFold(crc uint64, p *byte, n int, k *[2]uint64, out *[16]byte)
//
// Folds n bytes (n >= 16, a multiple of 16) at p, with crc XORed into the
// first 8, into 16 bytes with the same CRC: X <- L*k[0] ^ H*k[1] ^ next.
TEXT ·crcFold(SB), NOSPLIT, $0-40
	MOVQ  crc+0(FP), AX
	MOVQ  p+8(FP), SI
	MOVQ  n+16(FP), CX
	MOVQ  k+24(FP), DX
	MOVQ  out+32(FP), DI
	MOVOU (SI), X0
	MOVQ  AX, X1
	PXOR  X1, X0
	MOVOU (DX), X2
	ADDQ  $16, SI
	SUBQ  $16, CX

loop:
	CMPQ      CX, $16
	JB        done
	MOVOU     (SI), X3
	MOVO      X0, X1
	PCLMULQDQ $0x00, X2, X0
	PCLMULQDQ $0x11, X2, X1
	PXOR      X1, X0
	PXOR      X3, X0
	ADDQ      $16, SI
	SUBQ      $16, CX
	JMP       loop

done:
	MOVOU X0, (DI)
	RET
