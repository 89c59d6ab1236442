package digest

import (
	"math"
	"math/bits"
	"strconv"
)

// AppendScore appends the text a server of format f mixes into the digest
// for a sorted-set score.
func AppendScore(dst []byte, f float64, format ScoreFormat) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "nan"...)
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	}
	if format == Score72 {
		return appendFpconv(dst, f)
	}
	if out, ok := appendG17(dst, f); ok {
		return out
	}
	// Go's 'g' with an explicit precision follows C's %g rules: %e style
	// when exp < -4 or exp >= precision, trailing zeros removed, exponent
	// with a sign and at least two digits.
	return strconv.AppendFloat(dst, f, 'g', 17, 64)
}

// appendFpconv formats f like Redis's fpconv_dtoa (emit_digits): digits
// from the shortest round-trip representation, K the decimal exponent of
// the last digit.
func appendFpconv(dst []byte, f float64) []byte {
	if f == 0 {
		if math.Signbit(f) {
			return append(dst, "-0"...)
		}
		return append(dst, '0')
	}
	neg := f < 0
	if neg {
		dst = append(dst, '-')
		f = -f
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // d.ddddde±XX
	var digits []byte
	var i int
	for i = 0; i < len(e) && e[i] != 'e'; i++ {
		if e[i] != '.' {
			digits = append(digits, e[i])
		}
	}
	exp10, _ := strconv.Atoi(string(e[i+1:])) // exponent of the first digit
	nd := len(digits)
	K := exp10 - (nd - 1)
	absv := func(n int) int {
		if n < 0 {
			return -n
		}
		return n
	}
	exp := absv(K + nd - 1)
	if K >= 0 && exp < nd+7 { // plain integer
		dst = append(dst, digits...)
		for j := 0; j < K; j++ {
			dst = append(dst, '0')
		}
		return dst
	}
	if K < 0 && (K > -7 || exp < 4) { // plain decimal
		offset := nd - absv(K)
		if offset <= 0 {
			dst = append(dst, '0', '.')
			for j := 0; j < -offset; j++ {
				dst = append(dst, '0')
			}
			return append(dst, digits...)
		}
		dst = append(dst, digits[:offset]...)
		dst = append(dst, '.')
		return append(dst, digits[offset:]...)
	}
	negi := 0
	if neg {
		negi = 1
	}
	if nd > 18-negi {
		nd = 18 - negi
	}
	dst = append(dst, digits[0])
	if nd > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:nd]...)
	}
	dst = append(dst, 'e')
	if K+nd-1 < 0 {
		dst = append(dst, '-')
	} else {
		dst = append(dst, '+')
	}
	cent := 0
	if exp > 99 {
		cent = exp / 100
		dst = append(dst, byte(cent)+'0')
		exp -= cent * 100
	}
	if exp > 9 {
		dec := exp / 10
		dst = append(dst, byte(dec)+'0')
		exp -= dec * 10
	} else if cent != 0 {
		dst = append(dst, '0')
	}
	return append(dst, byte(exp%10)+'0')
}

// pow10 holds 10^0 .. 10^19.
var pow10 = func() (p [20]uint64) {
	p[0] = 1
	for k := 1; k < len(p); k++ {
		p[k] = p[k-1] * 10
	}
	return p
}()

// appendG17 is "%.17g" for the scores most datasets hold, 1e-3 <= |f| <
// 1e17, done in integers: the 17 digits are D = round(|f|·10^(16-X)) with
// X the decimal exponent, which is exact as |f| = mant·2^e and mant·10^p
// fits 128 bits; rounding is to nearest, ties to even, as C's printf does
// in the default rounding mode. In that range "%.17g" prints in plain
// notation. It reports false for other values (strconv formats them).
func appendG17(dst []byte, f float64) ([]byte, bool) {
	a := math.Abs(f)
	if !(a >= 1e-3 && a < 1e17) {
		return dst, false
	}
	b := math.Float64bits(a)
	mant := b&(1<<52-1) | 1<<52
	e2 := int(b>>52) - 1075 // a = mant·2^e2, mant in [2^52, 2^53)
	// X estimate: floor(log10(2^(e2+52))), low by at most one.
	x := (e2 + 52) * 78913 >> 18
	var d uint64
	for try := 0; ; try++ {
		p := 16 - x
		if try == 3 || p < 0 {
			return dst, false
		}
		if p >= len(pow10) { // X is higher: |f| >= 1e-3
			x++
			continue
		}
		d = scaleRound(mant, e2, pow10[p])
		if d >= 1e17 { // X is higher (or the rounding carried into a new digit)
			x++
			continue
		}
		if d < 1e16 {
			x--
			continue
		}
		break
	}
	var digits [20]byte
	ds := strconv.AppendUint(digits[:0], d, 10) // 17 digits
	if f < 0 {
		dst = append(dst, '-')
	}
	var frac []byte
	if x >= 0 {
		dst = append(dst, ds[:x+1]...)
		frac = ds[x+1:]
	} else {
		dst = append(dst, '0')
		frac = ds
	}
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	if len(frac) > 0 {
		dst = append(dst, '.')
		for range -x - 1 {
			dst = append(dst, '0')
		}
		dst = append(dst, frac...)
	}
	return dst, true
}

// scaleRound returns round(mant·m·2^e2) (to nearest, ties to even) for
// mant < 2^53, when the result fits 64 bits and -64 < e2.
func scaleRound(mant uint64, e2 int, m uint64) uint64 {
	hi, lo := bits.Mul64(mant, m)
	if e2 >= 0 {
		return lo << e2 // exact; hi is 0 when the result fits
	}
	s := uint(-e2)
	q := hi<<(64-s) | lo>>s
	rest, half := lo&(1<<s-1), uint64(1)<<(s-1)
	if rest > half || rest == half && q&1 == 1 {
		q++
	}
	return q
}
