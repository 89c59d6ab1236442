package rdb

import (
	"math"
	"math/bits"
	"strconv"
)

// float64pow10 holds the powers of ten that a float64 represents exactly.
var float64pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// uint64pow10[k] is 10^k.
var uint64pow10 = func() (p [20]uint64) {
	p[0] = 1
	for k := 1; k < len(p); k++ {
		p[k] = p[k-1] * 10
	}
	return p
}()

// parseFloat is strconv.ParseFloat(string(b), 64) without the string
// conversion, and with fast paths for plain decimals ("-12.375") of up to
// 19 digits: when the digits form an integer m <= 2^53 with at most 22 of
// them after the point, m and the power of ten are exact float64 values
// and one IEEE division rounds correctly; a larger m (the 17 digits of a
// "%.17g" score) is divided by the power of ten exactly in integers
// (divPow10). Either way the result equals ParseFloat's. Other text goes
// to ParseFloat.
func parseFloat(b []byte) (float64, bool) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, i = b[0] == '-', 1
	}
	var m uint64
	digits, frac, dot := 0, 0, false
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			if digits == 19 {
				return parseFloatSlow(b)
			}
			m = m*10 + uint64(c-'0')
			digits++
			if dot {
				frac++
			}
		case c == '.' && !dot:
			dot = true
		default:
			return parseFloatSlow(b)
		}
	}
	if digits == 0 || frac >= len(float64pow10) {
		return parseFloatSlow(b)
	}
	var f float64
	switch {
	case m <= 1<<53:
		f = float64(m)
		if frac > 0 {
			f /= float64pow10[frac]
		}
	case frac == 0:
		f = float64(m) // Go's integer conversion rounds to nearest even
	case frac < len(uint64pow10):
		f = divPow10(m, frac)
	default:
		return parseFloatSlow(b)
	}
	if neg {
		f = -f
	}
	return f, true
}

// divPow10 returns m / 10^k rounded to the nearest float64 (ties to even),
// for m > 2^53 and 1 <= k <= 19. The quotient is taken in integers with
// 63 or 64 significant bits; the bits below the 53 kept and the division's
// remainder (a sticky bit) decide the rounding.
func divPow10(m uint64, k int) float64 {
	d := uint64pow10[k]
	// m·2^s / d lies in (2^62, 2^64), and m·2^s < 2^(63+len(d)) keeps the
	// high word below d, as bits.Div64 needs.
	s := 63 - bits.Len64(m) + bits.Len64(d)
	var hi, lo uint64
	switch {
	case s == 0:
		lo = m
	case s < 64:
		hi, lo = m>>(64-s), m<<s
	default:
		hi = m << (s - 64)
	}
	q, r := bits.Div64(hi, lo, d)
	drop := bits.Len64(q) - 53
	mant := q >> drop
	rest, half := q&(1<<drop-1), uint64(1)<<(drop-1)
	if rest > half || rest == half && (r != 0 || mant&1 == 1) {
		mant++
		if mant == 1<<53 {
			mant >>= 1
			drop++
		}
	}
	return math.Ldexp(float64(mant), drop-s)
}

func parseFloatSlow(b []byte) (float64, bool) {
	f, err := strconv.ParseFloat(string(b), 64)
	return f, err == nil
}

// validFloat reports whether strconv.ParseFloat accepts b, quickly for
// plain decimals of up to 300 digits (which never overflow).
func validFloat(b []byte) bool {
	i := 0
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		i = 1
	}
	digits, dot := 0, false
	for _, c := range b[i:] {
		if c-'0' < 10 {
			digits++
			continue
		}
		if c == '.' && !dot {
			dot = true
			continue
		}
		_, ok := parseFloatSlow(b)
		return ok
	}
	if digits == 0 || digits > 300 {
		_, ok := parseFloatSlow(b)
		return ok
	}
	return true
}
