package rdb

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"slices"
)

// dupSet finds duplicate members (set members, zset members, hash fields)
// within one value: it keeps a 64-bit hash per member and, on a repeated
// hash, confirms the pair by walking the value again and comparing the
// bytes. Up to maxDupTable members the hashes go into a small open-addressing
// table (16 bytes per member at most, cleared per value), so a repeat shows
// at once; a larger value switches to a slice of hashes (8 bytes per member)
// that is sorted at the end. Memory is reused from value to value.
type dupSet struct {
	on   bool
	seed maphash.Seed
	k0   uint64 // random keys of the inline hash of short members
	k1   uint64
	n    int      // members added to the current value
	tab  []uint64 // table of hashes (0 = empty), len a power of two >= 2n
	size int      // part of tab in use for the current value
	h    []uint64 // hashes, once the value outgrew the table
	cand uint64   // a hash seen twice
	dup  bool     // cand is set
}

const (
	minDupTable = 64
	maxDupTable = 4096 // members kept in the table before switching to h
)

func (s *dupSet) reset(on bool) {
	if s.tab == nil {
		s.seed = maphash.MakeSeed()
		s.k0 = maphash.Bytes(s.seed, []byte("k0")) | 1
		s.k1 = maphash.Bytes(s.seed, []byte("k1"))
		s.tab = make([]uint64, minDupTable)
	}
	if s.n > 0 {
		clear(s.tab[:s.size])
	}
	s.on, s.n, s.size, s.h, s.dup = on, 0, minDupTable, s.h[:0], false
}

func (s *dupSet) add(b []byte) {
	if !s.on || s.dup {
		return
	}
	h := s.hash(b)
	s.n++
	if s.n > maxDupTable {
		if s.n == maxDupTable+1 {
			for _, x := range s.tab[:s.size] {
				if x != 0 {
					s.h = append(s.h, x)
				}
			}
		}
		s.h = append(s.h, h|1)
		return
	}
	if 2*s.n > s.size {
		s.grow()
	}
	s.insert(h | 1) // never 0; the low bit only adds candidates, which are confirmed
}

// hash returns a seeded 64-bit hash of b: inline for members of up to
// 16 bytes (the words of b, keyed with random k0 and k1, folded by a
// 64x64->128-bit multiply, as wyhash does), maphash for longer ones.
func (s *dupSet) hash(b []byte) uint64 {
	var x, y uint64
	switch n := len(b); {
	case n > 16:
		return maphash.Bytes(s.seed, b)
	case n >= 8:
		x, y = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-8:])
	case n >= 4:
		x, y = uint64(binary.LittleEndian.Uint32(b)), uint64(binary.LittleEndian.Uint32(b[n-4:]))
	case n > 0:
		x = uint64(b[0])<<16 | uint64(b[n/2])<<8 | uint64(b[n-1])
	}
	hi, lo := bits.Mul64(x^s.k0, y^s.k1^uint64(len(b)))
	hi, lo = bits.Mul64(hi^lo^s.k1, s.k0)
	return hi ^ lo
}

// insert puts h into the table, noting a repeat.
func (s *dupSet) insert(h uint64) {
	mask := uint64(s.size - 1)
	for i := h >> 7 & mask; ; i = (i + 1) & mask {
		switch s.tab[i] {
		case 0:
			s.tab[i] = h
			return
		case h:
			s.cand, s.dup = h, true
			return
		}
	}
}

// grow doubles the table in use and rehashes its entries.
func (s *dupSet) grow() {
	old := s.size
	s.h = append(s.h[:0], s.tab[:old]...)
	if len(s.tab) < 2*old {
		s.tab = make([]uint64, 2*old)
	} else {
		clear(s.tab[:old])
	}
	s.size = 2 * old
	for _, x := range s.h {
		if x != 0 {
			s.insert(x)
		}
	}
	s.h = s.h[:0]
}

// candidate returns a hash seen more than once.
func (s *dupSet) candidate() (uint64, bool) {
	if s.dup || len(s.h) < 2 {
		return s.cand, s.dup
	}
	slices.Sort(s.h)
	for i := 1; i < len(s.h); i++ {
		if s.h[i] == s.h[i-1] {
			return s.h[i], true
		}
	}
	return 0, false
}

// checkDuplicates runs after a clean walk of raw as type t. On a hash
// match it walks the value again and compares the members with that hash.
func (d *decoder) checkDuplicates(t Type, raw []byte) error {
	h, ok := d.dups.candidate()
	if !ok {
		return nil
	}
	var seen [][]byte
	var found []byte
	check := func(m []byte) error {
		if d.dups.hash(m)|1 != h {
			return nil
		}
		for _, p := range seen {
			if bytes.Equal(p, m) {
				found = p
				return errStopWalk
			}
		}
		seen = append(seen, bytes.Clone(m))
		return nil
	}
	v := &Visitor{
		SetMember:  check,
		ZSetMember: func(m []byte, _ float64) error { return check(m) },
		HashField:  func(f, _ []byte, _ int64) error { return check(f) },
	}
	d.dups.on = false
	err := d.walk(t, raw, v)
	if found != nil {
		k, _ := KindOf(t)
		what := "member"
		if k == KindHash {
			what = "field"
		}
		return errAt(0, "duplicate %s %s (%d bytes)", k, what, len(found))
	}
	if err != nil && err != errStopWalk {
		return err
	}
	return nil
}

// errStopWalk ends an internal walk early.
var errStopWalk = errStop{}

type errStop struct{}

func (errStop) Error() string { return "stop" }
