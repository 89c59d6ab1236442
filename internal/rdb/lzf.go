package rdb

// lzfMaxRatio bounds how much LZF can expand: a 3-byte back reference
// yields at most 264 bytes, so no valid stream expands more than 88 times.
const lzfMaxRatio = 88

// lzfDecompress appends the decompression of in to dst, which must come
// out exactly ulen bytes long. Back references are checked against the
// output produced so far.
func lzfDecompress(dst, in []byte, ulen int) ([]byte, error) {
	if ulen < 0 || ulen > len(in)*lzfMaxRatio+lzfMaxRatio {
		return dst, errAt(0, "lzf: uncompressed length %d implausible for %d compressed bytes", ulen, len(in))
	}
	base := len(dst)
	if cap(dst)-base < ulen {
		nd := make([]byte, base, base+ulen)
		copy(nd, dst)
		dst = nd
	}
	out := dst[base : base+ulen]
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
			copy(out[op:], in[ip:ip+n])
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
		if ref+n <= op {
			copy(out[op:op+n], out[ref:ref+n])
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
