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
	t.Logf("SHA-NI: %v", haveSHANI)
}

func BenchmarkMixD(b *testing.B) {
	p := []byte("some member name:12345")
	var d sum
	for b.Loop() {
		mixD(&d, p)
	}
}

func BenchmarkMixDStdlib(b *testing.B) {
	p := []byte("some member name:12345")
	var d sum
	for b.Loop() {
		h := sha1.Sum(p)
		for i := range d {
			d[i] ^= h[i]
		}
		d = sha1.Sum(d[:])
	}
}

func TestSHA1Dual_MatchesSingle(t *testing.T) {
	if !haveSHANI {
		t.Skip("no SHA-NI")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 2000 {
		var blkA, blkB [64]byte
		for i := range blkA {
			blkA[i], blkB[i] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		var wantA, wantB, gotA, gotB sum
		sha1Blocks(&wantA, &blkA[0], 1)
		sha1Blocks(&wantB, &blkB[0], 1)
		sha1Blocks2(&gotA, &gotB, &blkA[0], &blkB[0])
		if gotA != wantA || gotB != wantB {
			t.Fatalf("sha1Blocks2 = %x %x, want %x %x", gotA, gotB, wantA, wantB)
		}
		var aA, bA, aB, bB sum
		copy(aA[:], blkA[:20])
		copy(bA[:], blkA[20:40])
		copy(aB[:], blkB[:20])
		copy(bB[:], blkB[20:40])
		sha1Xor(&wantA, &aA, &bA)
		sha1Xor(&wantB, &aB, &bB)
		sha1Xor20x2(&aA, &aA, &bA, &bB, &aB, &bB) // in place, as the digest calls it
		if aA != wantA || bB != wantB {
			t.Fatalf("sha1Xor20x2 = %x %x, want %x %x", aA, bB, wantA, wantB)
		}
	}
}

func BenchmarkSHA1Xor20(b *testing.B) {
	var a, c sum
	for b.Loop() {
		sha1Xor(&a, &a, &c)
		sha1Xor(&c, &c, &a)
	}
}

func BenchmarkSHA1Xor20x2(b *testing.B) {
	var a, c sum
	for b.Loop() {
		sha1Xor20x2(&a, &a, &c, &c, &c, &a)
	}
}
