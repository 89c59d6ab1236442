package rdb

import "strconv"

// float64pow10 holds the powers of ten that a float64 represents exactly.
var float64pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat is strconv.ParseFloat(string(b), 64) without the string
// conversion, and with a fast path for plain decimals ("-12.375"): when
// the digits form an integer m <= 2^53 with at most 22 of them after the
// point, m and the power of ten are exact float64 values and one IEEE
// division rounds correctly, so the result equals ParseFloat's. Other
// text goes to ParseFloat.
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
	if digits == 0 || m > 1<<53 || frac >= len(float64pow10) {
		return parseFloatSlow(b)
	}
	f := float64(m)
	if frac > 0 {
		f /= float64pow10[frac]
	}
	if neg {
		f = -f
	}
	return f, true
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
