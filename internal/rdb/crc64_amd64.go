//go:build !purego

package rdb

// crcFold folds n bytes (n >= 16, a multiple of 16) at p, with crc XORed
// into the first 8, into 16 bytes out whose CRC-64 from 0 equals the CRC-64
// of the n bytes from crc. Only call it when haveCLMUL is true.
//
//go:noescape
func crcFold(crc uint64, p *byte, n int, k *[2]uint64, out *[16]byte)

func cpuHasCLMUL() bool

var haveCLMUL = cpuHasCLMUL()
