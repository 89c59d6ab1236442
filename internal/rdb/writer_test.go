package rdb

import (
	"strconv"
	"testing"
)

func TestCanonicalInt(t *testing.T) {
	for _, s := range []string{"0", "1", "-1", "9223372036854775807", "-9223372036854775808", "007", "+1", "-0", "", "-", "1a", "9223372036854775808", "-9223372036854775809", "99999999999999999999", " 1"} {
		v, ok := canonicalInt([]byte(s))
		pv, err := strconv.ParseInt(s, 10, 64)
		want := err == nil && strconv.FormatInt(pv, 10) == s
		if ok != want || ok && v != pv {
			t.Errorf("canonicalInt(%q) = %d, %v; want %d, %v", s, v, ok, pv, want)
		}
	}
}
