package digest

import (
	"crypto/sha1"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// padBlocks pads p as FIPS 180-4 §5.1.1 prescribes, independently of msg.
func padBlocks(p []byte) [][64]byte {
	b := append([]byte(nil), p...)
	b = append(b, 0x80)
	for len(b)%64 != 56 {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(p))*8)
	blks := make([][64]byte, len(b)/64)
	for i := range blks {
		copy(blks[i][:], b[64*i:])
	}
	return blks
}

// maxLaneLen bounds the message lengths the lane tests cover: every length
// 0..200, with the padding edges (55, 56, 63, 64, 119, 120) among them.
const maxLaneLen = 200

func randBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// sumPair hashes a and b block by block with compress (a two-lane
// routine) while both have blocks left, then with one (one lane).
func sumPair(a, b []byte, compress func(outA, outB, inA, inB *sum, blkA, blkB *[64]byte), one func(out, in *sum, blk *[64]byte)) (sum, sum) {
	ba, bb := padBlocks(a), padBlocks(b)
	sa, sb := h0, h0
	i := 0
	for ; i < len(ba) && i < len(bb); i++ {
		compress(&sa, &sb, &sa, &sb, &ba[i], &bb[i])
	}
	for ; i < len(ba); i++ {
		one(&sa, &sa, &ba[i])
	}
	for ; i < len(bb); i++ {
		one(&sb, &sb, &bb[i])
	}
	return sa, sb
}

// TestCompress2_AllLengths checks the two-lane compression (sha1Block2
// where SHA-NI is there, and the plain Go one everywhere) against
// crypto/sha1 on random messages of every length 0..200 in both lanes,
// the lanes' lengths differing so that multi-block messages run beside
// one-block ones and continue alone.
func TestCompress2_AllLengths(t *testing.T) {
	t.Logf("useSHA1Block = %v", useSHA1Block)
	impls := []struct {
		name string
		two  func(outA, outB, inA, inB *sum, blkA, blkB *[64]byte)
		one  func(out, in *sum, blk *[64]byte)
	}{
		{"compress2", compress2, compress1},
		{"generic", block2Generic, blockGeneric},
	}
	rng := rand.New(rand.NewPCG(13, 17))
	for _, im := range impls {
		for n := 0; n <= maxLaneLen; n++ {
			for range 30 {
				a := randBytes(rng, n)
				b := randBytes(rng, rng.IntN(maxLaneLen+1))
				sa, sb := sumPair(a, b, im.two, im.one)
				if want := sum(sha1.Sum(a)); sa != want {
					t.Fatalf("%s: lane A, %d bytes beside %d: %x, want %x", im.name, n, len(b), sa, want)
				}
				if want := sum(sha1.Sum(b)); sb != want {
					t.Fatalf("%s: lane B, %d bytes beside %d: %x, want %x", im.name, len(b), n, sb, want)
				}
			}
		}
	}
}

// TestCompress2_Aliasing: an out may be either in, and both lanes may be
// the same work.
func TestCompress2_Aliasing(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 23))
	for range 2000 {
		var ia, ib sum
		for i := range ia {
			ia[i], ib[i] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		var ba, bb [64]byte
		copy(ba[:], randBytes(rng, 64))
		copy(bb[:], randBytes(rng, 64))
		var wa, wb sum
		blockGeneric(&wa, &ia, &ba)
		blockGeneric(&wb, &ib, &bb)

		var oa, ob sum
		if compress2(&oa, &ob, &ia, &ib, &ba, &bb); oa != wa || ob != wb {
			t.Fatalf("distinct: %x %x, want %x %x", oa, ob, wa, wb)
		}
		a, b := ia, ib
		if compress2(&a, &b, &a, &b, &ba, &bb); a != wa || b != wb {
			t.Fatalf("out = own in: %x %x, want %x %x", a, b, wa, wb)
		}
		a, b = ia, ib
		if compress2(&b, &a, &a, &b, &ba, &bb); b != wa || a != wb {
			t.Fatalf("out = other in: %x %x, want %x %x", b, a, wa, wb)
		}
		a = ia
		if compress2(&a, &a, &a, &a, &ba, &ba); a != wa {
			t.Fatalf("same work twice: %x, want %x", a, wa)
		}
		a = ia
		if compress1(&a, &a, &ba); a != wa {
			t.Fatalf("compress1 in place: %x, want %x", a, wa)
		}
		a = h0
		var w sum
		blockGeneric(&w, &h0, &ba)
		if compress1(&a, &h0, &ba); a != w {
			t.Fatalf("compress1 from h0: %x, want %x", a, w)
		}
	}
}

// BenchmarkSHA1Block_Pair is two one-block hashes one after the other
// (sha1Block ×2), to compare with BenchmarkSHA1Block2_Pair.
func BenchmarkSHA1Block_Pair(b *testing.B) {
	if !useSHA1Block {
		b.Skip("no SHA-NI")
	}
	var blkA, blkB [64]byte
	var a, c sum
	for b.Loop() {
		sha1Block(&a, &blkA)
		sha1Block(&c, &blkB)
		blkA[0], blkB[0] = a[0], c[0]
	}
}

// BenchmarkSHA1Block2_Pair is the same pair of one-block hashes as the two
// lanes of one sha1Block2.
func BenchmarkSHA1Block2_Pair(b *testing.B) {
	if !useSHA1Block {
		b.Skip("no SHA-NI")
	}
	var blkA, blkB [64]byte
	var a, c sum
	for b.Loop() {
		sha1Block2(&a, &c, &h0, &h0, &blkA, &blkB)
		blkA[0], blkB[0] = a[0], c[0]
	}
}

// BenchmarkSHA1BlockGeneric_Pair is the plain Go fallback for the pair.
func BenchmarkSHA1BlockGeneric_Pair(b *testing.B) {
	var blkA, blkB [64]byte
	var a, c sum
	for b.Loop() {
		block2Generic(&a, &c, &h0, &h0, &blkA, &blkB)
		blkA[0], blkB[0] = a[0], c[0]
	}
}

// TestMsg_AllLengths checks msg's padding and block-by-block hashing (two
// messages side by side, as the digest runs them) against crypto/sha1 on
// every length 0..200: one block up to 55 bytes, two up to 119, hashed at
// once beyond.
func TestMsg_AllLengths(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 41))
	var a, b msg
	for n := 0; n <= maxLaneLen; n++ {
		for range 30 {
			pa := randBytes(rng, n)
			pb := randBytes(rng, rng.IntN(maxLaneLen+1))
			a.set(pa)
			b.set(pb)
			for !a.done() && !b.done() {
				run2(a.lane(), b.lane())
			}
			for !a.done() {
				run1(a.lane())
			}
			for !b.done() {
				run1(b.lane())
			}
			if want := sum(sha1.Sum(pa)); a.st != want {
				t.Fatalf("msg of %d bytes: %x, want %x", n, a.st, want)
			}
			if want := sum(sha1.Sum(pb)); b.st != want {
				t.Fatalf("msg of %d bytes: %x, want %x", len(pb), b.st, want)
			}
		}
	}
}
