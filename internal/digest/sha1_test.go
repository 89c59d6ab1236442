package digest

import (
	"crypto/sha1"
	"math/rand/v2"
	"testing"
)

func TestSHA1Sum_MatchesCryptoSHA1(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 200)
	for n := 0; n <= len(buf); n++ {
		for range 20 {
			for i := range buf[:n] {
				buf[i] = byte(rng.Uint32())
			}
			if got, want := sha1Sum(buf[:n]), sum(sha1.Sum(buf[:n])); got != want {
				t.Fatalf("sha1Sum of %d bytes = %x, want %x", n, got, want)
			}
		}
	}
	for range 1000 {
		var a, b, x sum
		for i := range a {
			a[i], b[i] = byte(rng.Uint32()), byte(rng.Uint32())
			x[i] = a[i] ^ b[i]
		}
		want := sum(sha1.Sum(x[:]))
		var got sum
		if sha1Xor(&got, &a, &b); got != want {
			t.Fatalf("sha1Xor(%x, %x) = %x, want %x", a, b, got, want)
		}
		if sha1Xor(&a, &a, &b); a != want {
			t.Fatalf("sha1Xor in place = %x, want %x", a, want)
		}
	}
}

func BenchmarkMixD(b *testing.B) {
	p := []byte("some member name:12345")
	var d sum
	for b.Loop() {
		mixD(&d, p)
	}
}

func BenchmarkSHA1Xor20(b *testing.B) {
	var a, c sum
	for b.Loop() {
		sha1Xor(&a, &a, &c)
		sha1Xor(&c, &c, &a)
	}
}
