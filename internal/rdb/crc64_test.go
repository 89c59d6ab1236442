package rdb

import (
	"hash/crc64"
	"math/rand/v2"
	"testing"
)

func TestCRC64(t *testing.T) {
	if got := CRC64(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("CRC64(123456789) = %x, want e9c6d914c4b8d9ca", got)
	}
	tab := crc64.MakeTable(crcPoly)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		p := make([]byte, rnd.IntN(300+i))
		for j := range p {
			p[j] = byte(rnd.Uint32())
		}
		want := ^crc64.Update(^uint64(0), tab, p)
		if got := crcTables(0, p); got != want {
			t.Fatalf("case %d: crcTables = %x, want %x", i, got, want)
		}
		if got := CRC64(0, p); got != want {
			t.Fatalf("case %d: CRC64 = %x, want %x", i, got, want)
		}
		k := rnd.IntN(len(p) + 1)
		if got := CRC64(CRC64(0, p[:k]), p[k:]); got != want {
			t.Fatalf("case %d: incremental CRC64 = %x, want %x", i, got, want)
		}
	}
}

func BenchmarkCRC64Tables(b *testing.B) {
	p := make([]byte, 1<<20)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		crcTables(0, p)
	}
}

func BenchmarkCRC64(b *testing.B) {
	p := make([]byte, 1<<20)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		CRC64(0, p)
	}
}
