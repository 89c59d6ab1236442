package digest

import (
	"bytes"
	"crypto/sha1"
	"math/rand/v2"
	"testing"
)

// TestSHA1Fast_AllLengths checks sha1Sum against crypto/sha1 on every
// length 0..200 (one-block fast path up to 55 bytes, crypto/sha1 beyond)
// with many random inputs, plus all-zero and all-0xff inputs.
func TestSHA1Fast_AllLengths(t *testing.T) {
	t.Logf("useSHA1Block = %v", useSHA1Block)
	rng := rand.New(rand.NewPCG(7, 11))
	buf := make([]byte, 201)
	for n := 0; n <= 200; n++ {
		p := buf[1 : 1+n] // unaligned start
		for _, fill := range []byte{0x00, 0xff} {
			copy(p, bytes.Repeat([]byte{fill}, n))
			if got, want := sha1Sum(p), sum(sha1.Sum(p)); got != want {
				t.Fatalf("sha1Sum(%d × %#x) = %x, want %x", n, fill, got, want)
			}
		}
		for range 300 {
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			if got, want := sha1Sum(p), sum(sha1.Sum(p)); got != want {
				t.Fatalf("sha1Sum of %d bytes %x = %x, want %x", n, p, got, want)
			}
		}
	}
}

// TestSHA1Fast_Xor checks sha1Xor against crypto/sha1, also with out
// aliasing a, b, or both.
func TestSHA1Fast_Xor(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	rnd := func() (s sum) {
		for i := range s {
			s[i] = byte(rng.Uint32())
		}
		return s
	}
	ref := func(a, b sum) sum {
		var x sum
		for i := range x {
			x[i] = a[i] ^ b[i]
		}
		return sum(sha1.Sum(x[:]))
	}
	for range 20000 {
		a, b := rnd(), rnd()
		want := ref(a, b)
		var got sum
		if sha1Xor(&got, &a, &b); got != want {
			t.Fatalf("sha1Xor(%x, %x) = %x, want %x", a, b, got, want)
		}
		a2, b2 := a, b
		if sha1Xor(&a2, &a2, &b2); a2 != want || b2 != b {
			t.Fatalf("sha1Xor(out=a) = %x, want %x", a2, want)
		}
		a2, b2 = a, b
		if sha1Xor(&b2, &a2, &b2); b2 != want || a2 != a {
			t.Fatalf("sha1Xor(out=b) = %x, want %x", b2, want)
		}
		a2 = a
		if sha1Xor(&a2, &a2, &a2); a2 != ref(a, a) {
			t.Fatalf("sha1Xor(out=a=b) = %x, want %x", a2, ref(a, a))
		}
	}
	// Chained in place, as mixD does.
	var d, chk sum
	for i := range 1000 {
		h := sha1Sum([]byte{byte(i), byte(i >> 8)})
		chk = ref(chk, h)
		sha1Xor(&d, &d, &h)
	}
	if d != chk {
		t.Fatalf("chained sha1Xor = %x, want %x", d, chk)
	}
}

func BenchmarkSHA1Sum22(b *testing.B) {
	p := []byte("some member name:12345")
	var s sum
	for b.Loop() {
		s = sha1Sum(p)
		p[0] = s[0]
	}
}

// BenchmarkMixD_CryptoSHA1 is mixD as it was before the fast path (two
// crypto/sha1.Sum calls), for comparison with BenchmarkMixD.
func BenchmarkMixD_CryptoSHA1(b *testing.B) {
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
