package rdb

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// lzfDecompressRef is the plain byte-wise decoder lzfDecompress is checked against; it appends the decompression of in to dst, which must come
// out exactly ulen bytes long. Back references are checked against the
// output produced so far.
func lzfDecompressRef(dst, in []byte, ulen int) ([]byte, error) {
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

func TestLZFDecompress_MatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		// Compressible input: runs, repeats at short and long distances.
		var s []byte
		for len(s) < rng.IntN(3000) {
			switch rng.IntN(4) {
			case 0:
				s = append(s, bytes.Repeat([]byte{byte(rng.Uint32())}, rng.IntN(300))...)
			case 1:
				if len(s) > 0 {
					from := rng.IntN(len(s))
					s = append(s, s[from:from+rng.IntN(len(s)-from)]...)
				}
			default:
				for range rng.IntN(80) {
					s = append(s, "abcdefgh"[rng.IntN(8)])
				}
			}
		}
		enc := lzfCompressTest(s)
		got, err := lzfDecompress(nil, enc, len(s))
		if err != nil || !bytes.Equal(got, s) {
			t.Fatalf("case %d (%d bytes): round trip %v", i, len(s), err)
		}
		checkLZFAgainstReference(t, enc, len(s))
		// Damaged streams: the same verdict and output as the reference.
		if len(enc) > 8 {
			in := bytes.Clone(enc)
			in[rng.IntN(len(in))] ^= byte(1 + rng.IntN(255))
			checkLZFAgainstReference(t, in, len(s))
		}
	}
}

func checkLZFAgainstReference(t *testing.T, in []byte, ulen int) {
	t.Helper()
	want, werr := lzfDecompressRef(nil, in, ulen)
	got, gerr := lzfDecompress([]byte("prefix"), in, ulen)
	if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
		t.Fatalf("errors differ: %v, reference %v", gerr, werr)
	}
	if werr == nil && !bytes.Equal(got[6:], want) {
		t.Fatalf("outputs differ")
	}
}

func FuzzLZFReference(f *testing.F) {
	f.Add([]byte{0x01, 'x', 'x', 0xe0, 0x57, 0x00, 0x01, 'x', 'x'}, uint16(100))
	f.Add(AppendLZFString(nil, []byte("hello hello hello hello"))[3:], uint16(23))
	f.Fuzz(func(t *testing.T, in []byte, ulen uint16) {
		if len(in) > fuzzMaxInput {
			return
		}
		checkLZFAgainstReference(t, in, int(ulen))
	})
}

// lzfCompressTest is a greedy LZF compressor, for test data with back
// references at every distance and length.
func lzfCompressTest(s []byte) []byte {
	var out, lit []byte
	flush := func() {
		for len(lit) > 0 {
			n := min(32, len(lit))
			out = append(out, byte(n-1))
			out = append(out, lit[:n]...)
			lit = lit[n:]
		}
	}
	last := map[[3]byte]int{}
	for i := 0; i < len(s); {
		if i+3 <= len(s) {
			k := [3]byte(s[i : i+3])
			if j, ok := last[k]; ok && i-j <= 8192 {
				n := 0
				for i+n < len(s) && n < 264 && s[j+n] == s[i+n] {
					n++
				}
				flush()
				off, l := i-j-1, n-2
				if l < 7 {
					out = append(out, byte(l<<5|off>>8))
				} else {
					out = append(out, byte(7<<5|off>>8), byte(l-7))
				}
				out = append(out, byte(off))
				for m := i; m < i+n && m+3 <= len(s); m++ {
					last[[3]byte(s[m:m+3])] = m
				}
				i += n
				continue
			}
			last[k] = i
		}
		lit = append(lit, s[i])
		i++
	}
	flush()
	return out
}
