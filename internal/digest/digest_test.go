package digest

import (
	"crypto/sha1"
	"encoding/hex"
	"math"
	"testing"
)

func TestAppendScore_Score70MatchesC(t *testing.T) {
	// Expected strings printed by glibc printf("%.17g").
	tests := []struct {
		f    float64
		want string
	}{
		{0.1, "0.10000000000000001"},
		{1e20, "1e+20"},
		{math.Copysign(0, -1), "-0"},
		{0, "0"},
		{1, "1"},
		{-1, "-1"},
		{100, "100"},
		{1.5, "1.5"},
		{3.14159, "3.1415899999999999"},
		{1e-5, "1.0000000000000001e-05"},
		{1e-4, "0.0001"},
		{123456789012345678.0, "1.2345678901234568e+17"},
		{1e16, "10000000000000000"},
		{1e17, "1e+17"},
		{-2.5e-300, "-2.5e-300"},
		{5e-324, "4.9406564584124654e-324"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{0.3, "0.29999999999999999"},
		{2.0 / 3, "0.66666666666666663"},
		{1234.5678, "1234.5678"},
		{-1e20, "-1e+20"},
		{0.000123, "0.00012300000000000001"},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
		{math.NaN(), "nan"},
	}
	for _, tt := range tests {
		if got := string(AppendScore(nil, tt.f, Score70)); got != tt.want {
			t.Errorf("AppendScore(%v, 7.0) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

func TestAppendScore_Score72(t *testing.T) {
	// Expected strings follow fpconv_dtoa's emit_digits rules.
	tests := []struct {
		f    float64
		want string
	}{
		{0.1, "0.1"},
		{math.Copysign(0, -1), "-0"},
		{0, "0"},
		{1, "1"},
		{-1.5, "-1.5"},
		{100, "100"},
		{1e20, "1e+20"},
		{-1e20, "-1e+20"},
		{1234567, "1234567"},
		{12345678, "12345678"},
		{1e7, "10000000"},
		{1e-5, "0.00001"},
		{1.5e-7, "1.5e-7"},
		{1.2345e-10, "1.2345e-10"},
		{123.456, "123.456"},
		{1e300, "1e+300"},
		{1.5e-300, "1.5e-300"},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
	}
	for _, tt := range tests {
		if got := string(AppendScore(nil, tt.f, Score72)); got != tt.want {
			t.Errorf("AppendScore(%v, 7.2) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

func TestParseScoreFormat(t *testing.T) {
	for in, want := range map[string]ScoreFormat{"7.0": Score70, "7.2": Score72, "": Score70, "fpconv": Score72} {
		got, err := ParseScoreFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseScoreFormat(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseScoreFormat("6"); err == nil {
		t.Error("ParseScoreFormat(\"6\") accepted")
	}
}

func TestDigest_EmptyIsZeros(t *testing.T) {
	if got := New(Options{}).Sum(); got != "0000000000000000000000000000000000000000" {
		t.Fatalf("Sum() = %s", got)
	}
}

func TestMixD_ClusterConstant(t *testing.T) {
	// redis-formats.md §8.3: C = SHA1(SHA1(00 00 00 00)) starting from zero.
	var d sum
	mixD(&d, []byte{0, 0, 0, 0})
	if got := hex.EncodeToString(d[:]); got != "aa3098f3aae94baac14e3b8b8dcae989af93f6a2" {
		t.Fatalf("mixD(0, db0) = %s", got)
	}
	// xorD then SHA1 is mixD.
	var a sum
	xorD(&a, []byte("x"))
	a = sha1.Sum(a[:])
	var b sum
	mixD(&b, []byte("x"))
	if a != b {
		t.Fatal("mixD differs from xorD+SHA1")
	}
}

func TestDigest_DBOrderIndependent(t *testing.T) {
	// Per-db accumulators: feeding db 3 before db 1 gives the same Sum as
	// ascending order.
	mk := func(order []int) string {
		d := New(Options{})
		for _, db := range order {
			acc := d.dbs[db]
			if acc == nil {
				acc = new(sum)
				d.dbs[db] = acc
			}
			xorD(acc, []byte{byte(db)})
		}
		return d.Sum()
	}
	if a, b := mk([]int{1, 3}), mk([]int{3, 1}); a != b {
		t.Fatalf("order matters: %s vs %s", a, b)
	}
}

func TestDigest_Merge(t *testing.T) {
	a, b, all := New(Options{}), New(Options{}), New(Options{})
	for i, db := range []int{0, 2, 0, 5} {
		dst := a
		if i%2 == 1 {
			dst = b
		}
		for _, d := range []*Digest{dst, all} {
			acc := d.dbs[db]
			if acc == nil {
				acc = new(sum)
				d.dbs[db] = acc
			}
			xorD(acc, []byte{byte(i)})
			d.keys++
		}
	}
	a.Merge(b)
	if a.Sum() != all.Sum() || a.Keys() != all.Keys() {
		t.Fatalf("merged %s (%d keys), want %s (%d keys)", a.Sum(), a.Keys(), all.Sum(), all.Keys())
	}
}
