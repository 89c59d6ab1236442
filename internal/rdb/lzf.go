package rdb

import "encoding/binary"

// lzfMaxRatio bounds how much LZF can expand: a 3-byte back reference
// yields at most 264 bytes, so no valid stream expands more than 88 times.
const lzfMaxRatio = 88

// lzfSlack is how far past the declared length the decoder may scribble:
// literal runs and back references are copied 8 bytes at a time, up to
// 32 bytes for a literal run and 7 bytes beyond a back reference.
const lzfSlack = 32

// lzfDecompress appends the decompression of in to dst, which must come
// out exactly ulen bytes long. Back references are checked against the
// output produced so far. Bytes of dst's capacity beyond the result may
// be overwritten.
func lzfDecompress(dst, in []byte, ulen int) ([]byte, error) {
	if ulen < 0 || ulen > len(in)*lzfMaxRatio+lzfMaxRatio {
		return dst, errAt(0, "lzf: uncompressed length %d implausible for %d compressed bytes", ulen, len(in))
	}
	base := len(dst)
	if cap(dst)-base < ulen+lzfSlack {
		nd := make([]byte, base, base+ulen+lzfSlack)
		copy(nd, dst)
		dst = nd
	}
	out := dst[base : base+ulen+lzfSlack]
	op, ip := 0, 0
	for ip < len(in) {
		c := int(in[ip])
		ip++
		if c < 32 {
			n := c + 1
			if ip+n > len(in) {
				return dst, errAt(ip-1, "lzf: literal run of %d bytes beyond the input", n)
			}
			if op+n > ulen {
				return dst, errAt(ip-1, "lzf: output longer than the declared %d bytes", ulen)
			}
			if ip+32 <= len(in) {
				// Copy 16 or 32 bytes; what lands past n is overwritten
				// next, or is slack.
				s, o := in[ip:ip+32], out[op:op+32]
				binary.LittleEndian.PutUint64(o, binary.LittleEndian.Uint64(s))
				binary.LittleEndian.PutUint64(o[8:], binary.LittleEndian.Uint64(s[8:]))
				if n > 16 {
					binary.LittleEndian.PutUint64(o[16:], binary.LittleEndian.Uint64(s[16:]))
					binary.LittleEndian.PutUint64(o[24:], binary.LittleEndian.Uint64(s[24:]))
				}
			} else {
				copy(out[op:op+n], in[ip:ip+n])
			}
			op += n
			ip += n
			continue
		}
		n := c >> 5
		if n == 7 {
			if ip >= len(in) {
				return dst, errAt(ip, "lzf: truncated back reference")
			}
			n += int(in[ip])
			ip++
		}
		if ip >= len(in) {
			return dst, errAt(ip, "lzf: truncated back reference")
		}
		ref := op - ((c&0x1f)<<8 + int(in[ip]) + 1)
		ip++
		n += 2
		if ref < 0 {
			return dst, errAt(ip-2, "lzf: back reference before the start of the output")
		}
		if op+n > ulen {
			return dst, errAt(ip-2, "lzf: output longer than the declared %d bytes", ulen)
		}
		if op-ref >= 8 {
			// Every 8-byte word read was written before (the distance is
			// at least 8), even where source and destination overlap.
			for i := 0; i < n; i += 8 {
				binary.LittleEndian.PutUint64(out[op+i:], binary.LittleEndian.Uint64(out[ref+i:]))
			}
			op += n
		} else {
			for range n {
				out[op] = out[ref]
				op++
				ref++
			}
		}
	}
	if op != ulen {
		return dst, errAt(len(in), "lzf: output is %d bytes, declared %d", op, ulen)
	}
	return dst[:base+ulen], nil
}
