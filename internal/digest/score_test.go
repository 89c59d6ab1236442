package digest

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// appendG17 must print exactly what strconv's 'g' with precision 17 (C's
// "%.17g") prints, wherever it answers.
func TestAppendG17_MatchesStrconv(t *testing.T) {
	check := func(f float64) {
		t.Helper()
		got, ok := appendG17(nil, f)
		if a := math.Abs(f); ok != (a >= 1e-3 && a < 1e17) {
			t.Fatalf("appendG17(%v) ok=%v", f, ok)
		}
		if !ok {
			return
		}
		if want := strconv.FormatFloat(f, 'g', 17, 64); string(got) != want {
			t.Fatalf("appendG17(%v) = %q, strconv %q", f, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	// the edges of the range and of every decade in it, and their neighbours
	for x := -3; x <= 17; x++ {
		p := math.Pow(10, float64(x))
		for _, v := range []float64{p, math.Nextafter(p, 0), math.Nextafter(p, math.Inf(1)), 9.9999999999999999 * p / 10, 5 * p, 0.5 * p} {
			check(v)
			check(-v)
		}
	}
	for range 300_000 {
		// uniform over the bits of the range
		b := math.Float64bits(1e-3) + rng.Uint64N(math.Float64bits(1e17)-math.Float64bits(1e-3))
		check(math.Float64frombits(b))
		// scores as people write them
		check(rng.Float64()*2e6 - 1e6)
		check(float64(rng.IntN(1<<30)) / 100)
		check(float64(rng.Int64N(1 << 56)))
		check(float64(rng.IntN(1000)) + 0.5)
	}
}

func BenchmarkAppendScore70(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	vals := make([]float64, 1024)
	for i := range vals {
		vals[i] = rng.Float64()*2e6 - 1e6
	}
	var buf []byte
	b.Run("redback", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			buf = AppendScore(buf[:0], vals[i&1023], Score70)
		}
	})
	b.Run("strconv", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			buf = strconv.AppendFloat(buf[:0], vals[i&1023], 'g', 17, 64)
		}
	})
}
