package rdb

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestParseFloat_MatchesStrconv(t *testing.T) {
	cases := []string{"", "-", "+", ".", "-.", "0", "-0", "+0", "1", "1.", ".5", "-.5", "1.5", "0.1", "-12.375",
		"9007199254740992", "9007199254740993", "9007199254740993.0", "1234567890123456789", "12345678901234567890",
		"0.0000000000000000000001", "0.00000000000000000000001", "1e5", "1E5", "inf", "-inf", "nan", "NaN",
		"0x1p3", "1_000", " 1", "1 ", "1..2", "1.2.3", "--1", "+-1", "3.14159265358979323846", "00000000000000000001.5",
		strings.Repeat("9", 300), strings.Repeat("9", 308), strings.Repeat("9", 309), strings.Repeat("9", 400) + ".5"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		f := math.Float64frombits(rng.Uint64())
		cases = append(cases, strconv.FormatFloat(f, 'f', -1, 64), strconv.FormatFloat(f, 'g', 17, 64))
		cases = append(cases, strconv.FormatFloat(float64(rng.IntN(1<<20))/float64(int(1)<<rng.IntN(20)), 'f', -1, 64))
		cases = append(cases, strconv.FormatFloat(rng.Float64()*1000, 'f', rng.IntN(25), 64))
		// 17-19 digits with the point anywhere: the divPow10 path
		d := strconv.FormatUint(rng.Uint64N(9e18)+1e18, 10)[:17+rng.IntN(3)]
		at := rng.IntN(len(d) + 1)
		cases = append(cases, d[:at]+"."+d[at:], "-"+d[:at]+"."+d[at:])
	}
	// exact ties, written with 17-19 digits: n.5 between the integers of
	// [2^52, 2^53), n.25 and n.75 between the halves of [2^51, 2^52); and
	// the same plus one digit 1 past them (just above the tie)
	for range 20000 {
		n := strconv.FormatUint(1<<52+rng.Uint64N(1<<52), 10)
		h := strconv.FormatUint(1<<51+rng.Uint64N(1<<51), 10)
		cases = append(cases, n+".5", n+".50", "-"+n+".5", n+".51", h+".25", h+".75", h+".251", "-"+h+".75")
		f := rng.Float64()*2e6 - 1e6
		cases = append(cases, strconv.FormatFloat(f, 'f', 12, 64), strconv.FormatFloat(f, 'g', 17, 64))
	}
	for _, c := range cases {
		want, err := strconv.ParseFloat(c, 64)
		got, ok := parseFloat([]byte(c))
		if validFloat([]byte(c)) != (err == nil) {
			t.Fatalf("validFloat(%q) = %v, strconv err %v", c, !(err == nil), err)
		}
		if ok != (err == nil) {
			t.Fatalf("parseFloat(%q) ok=%v, strconv err %v", c, ok, err)
		}
		if ok && math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("parseFloat(%q) = %v (%x), strconv %v (%x)", c, got, math.Float64bits(got), want, math.Float64bits(want))
		}
	}
}
