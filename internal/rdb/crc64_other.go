//go:build !amd64 || purego

package rdb

const haveCLMUL = false

func crcFold(crc uint64, p *byte, n int, k *[2]uint64, out *[16]byte) {
	panic("rdb: crcFold without PCLMULQDQ")
}
