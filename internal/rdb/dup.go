package rdb

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"os"
	"slices"
)

// dupSet finds duplicate members (set members, zset members, hash fields)
// within one value: it keeps a 64-bit hash per member and, on a repeated
// hash, confirms the pair by walking the value again and comparing the
// bytes. Up to maxDupTable members the hashes go into a small open-addressing
// table (16 bytes per member at most, cleared per value), so a repeat shows
// at once; a larger value switches to chunks of hashes (8 bytes per member,
// allocated a chunk at a time, never copied to grow) that are sorted and
// merged at the end. Past maxMemChunks chunks (1 MiB) each full chunk is
// sorted and written to an unlinked temporary file instead, and merged from
// there through small buffers, so memory stays bounded however many members
// a value has (8 bytes of temporary disk each); when no temporary file can
// be made the chunks stay in memory. Memory is reused from value to value.
type dupSet struct {
	on   bool
	seed maphash.Seed
	k0   uint64 // random keys of the inline hash of short members
	k1   uint64
	n    int        // members added to the current value
	tab  []uint64   // table of hashes (0 = empty), len a power of two >= 2n
	size int        // part of tab in use for the current value
	h    []uint64   // scratch of grow
	big  [][]uint64 // hashes in chunks of dupChunk, once the value outgrew the table
	free [][]uint64 // chunks of earlier values, for reuse
	cand uint64     // a hash seen twice
	dup  bool       // cand is set

	spill   *os.File // sorted full chunks of the current value, one after the other
	runs    int      // chunks in spill
	noSpill bool     // spill could not be made or written: keep the chunks in memory
	wbuf    []byte
}

const (
	minDupTable = 64
	maxDupTable = 4096    // members kept in the table before switching to big
	dupChunk    = 1 << 16 // hashes per chunk of big (512 KiB)

	maxFreeChunks = 2 // chunks kept for reuse between values
	maxMemChunks  = 2 // full chunks kept in memory before they go to a temporary file
	mergeBuf      = 512
	spillBuf      = 8192 // hashes per write of a chunk to the temporary file (64 KiB)
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
	// Keep a few chunks for the next big value; the chunks of a huge one
	// go to the GC.
	for _, c := range s.big {
		if len(s.free) < maxFreeChunks {
			s.free = append(s.free, c)
		}
	}
	clear(s.big)
	if s.spill != nil {
		s.spill.Close()
		s.spill = nil
	}
	s.on, s.n, s.size, s.big, s.dup = on, 0, minDupTable, s.big[:0], false
	s.runs, s.noSpill, s.wbuf = 0, false, nil
}

// bigAdd appends h to the chunks.
func (s *dupSet) bigAdd(h uint64) {
	if k := len(s.big); k == 0 || len(s.big[k-1]) == dupChunk {
		if k >= maxMemChunks && !s.noSpill {
			s.spillChunks()
		}
		var c []uint64
		if f := len(s.free); f > 0 {
			c, s.free = s.free[f-1][:0], s.free[:f-1]
		} else {
			c = make([]uint64, 0, dupChunk)
		}
		s.big = append(s.big, c)
	}
	k := len(s.big) - 1
	s.big[k] = append(s.big[k], h)
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
					s.bigAdd(x)
				}
			}
		}
		s.bigAdd(h | 1)
		return
	}
	if 2*s.n > s.size {
		s.grow()
	}
	s.insert(h | 1) // never 0; the low bit only adds candidates, which are confirmed
}

// hash returns a seeded 64-bit hash of b: inline for members of up to
// 16 bytes (the words of b, keyed with random k0 and k1, folded by a
// 64x64->128-bit multiply, as wyhash does, then with the length by a
// second one), maphash for longer ones.
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
	// The length goes in after the first fold: XORed into y it cancelled
	// against y's own low bits ("f1220" and "f12220" hashed alike).
	hi, lo := bits.Mul64(x^s.k0, y^s.k1)
	hi, lo = bits.Mul64(hi^lo^s.k1^uint64(len(b)), s.k0)
	return hi ^ lo
}

// spillChunks writes the full chunks, each sorted, to the temporary file
// and frees them; on any error it leaves them and stops spilling.
func (s *dupSet) spillChunks() {
	if s.spill == nil {
		f, err := os.CreateTemp("", "redback-dups-")
		if err != nil {
			s.noSpill = true
			return
		}
		os.Remove(f.Name()) // gone with the descriptor
		s.spill = f
	}
	for len(s.big) > 0 {
		c := s.big[len(s.big)-1]
		slices.Sort(c)
		off := int64(s.runs) * dupChunk * 8
		for len(c) > 0 {
			n := min(len(c), spillBuf)
			s.wbuf = s.wbuf[:0]
			for _, h := range c[:n] {
				s.wbuf = binary.LittleEndian.AppendUint64(s.wbuf, h)
			}
			if _, err := s.spill.WriteAt(s.wbuf, off); err != nil {
				s.noSpill = true
				return
			}
			c, off = c[n:], off+int64(n)*8
		}
		c = s.big[len(s.big)-1]
		s.runs++
		s.big[len(s.big)-1] = nil
		s.big = s.big[:len(s.big)-1]
		if len(s.free) < maxFreeChunks {
			s.free = append(s.free, c)
		}
	}
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

// dupRun is a sorted run of hashes being merged: buf, then left more
// from the temporary file at off.
type dupRun struct {
	buf  []uint64
	off  int64
	left int
	mem  []uint64 // buf's backing array for a run read from the file
}

// candidate returns a hash seen more than once; err is a failed read of
// the temporary file.
func (s *dupSet) candidate() (uint64, bool, error) {
	if s.dup || len(s.big) == 0 && s.runs == 0 {
		return s.cand, s.dup, nil
	}
	// Sort each chunk, then merge them all, and the runs in the file,
	// through a min-heap of their heads: a repeat is a hash equal to the
	// one merged before it.
	hp := make([]dupRun, 0, len(s.big)+s.runs)
	for _, c := range s.big {
		slices.Sort(c)
		if len(c) > 0 {
			hp = append(hp, dupRun{buf: c})
		}
	}
	rb := make([]byte, mergeBuf*8)
	refill := func(r *dupRun) error {
		n := min(r.left, mergeBuf)
		if _, err := s.spill.ReadAt(rb[:n*8], r.off); err != nil {
			return err
		}
		if r.mem == nil {
			r.mem = make([]uint64, mergeBuf)
		}
		for i := range n {
			r.mem[i] = binary.LittleEndian.Uint64(rb[8*i:])
		}
		r.buf, r.off, r.left = r.mem[:n], r.off+int64(n)*8, r.left-n
		return nil
	}
	for i := range s.runs {
		r := dupRun{off: int64(i) * dupChunk * 8, left: dupChunk}
		if err := refill(&r); err != nil {
			return 0, false, err
		}
		hp = append(hp, r)
	}
	less := func(i, j int) bool { return hp[i].buf[0] < hp[j].buf[0] }
	down := func(i int) {
		for {
			l, m := 2*i+1, i
			if l < len(hp) && less(l, m) {
				m = l
			}
			if l+1 < len(hp) && less(l+1, m) {
				m = l + 1
			}
			if m == i {
				return
			}
			hp[i], hp[m] = hp[m], hp[i]
			i = m
		}
	}
	for i := len(hp)/2 - 1; i >= 0; i-- {
		down(i)
	}
	var prev uint64 // hashes are never 0
	for len(hp) > 0 {
		r := &hp[0]
		h := r.buf[0]
		if h == prev {
			return h, true, nil
		}
		prev = h
		if r.buf = r.buf[1:]; len(r.buf) == 0 {
			if r.left > 0 {
				if err := refill(r); err != nil {
					return 0, false, err
				}
			} else {
				hp[0] = hp[len(hp)-1]
				hp = hp[:len(hp)-1]
			}
		}
		down(0)
	}
	return 0, false, nil
}

// checkDuplicates runs after a clean walk of raw as type t. On a hash
// match it walks the value again and compares the members with that hash.
func (d *decoder) checkDuplicates(t Type, raw []byte) error {
	h, ok, err := d.dups.candidate()
	if err != nil {
		return errAt(0, "duplicate check: %v", err)
	}
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
	err = d.walk(t, raw, v)
	if found != nil {
		return errAt(0, "%s (%d bytes)", dupWhat(t), len(found))
	}
	if err != nil && err != errStopWalk {
		return err
	}
	return nil
}

// dupWhat says what is duplicated in a value of type t: "duplicate set
// member", "duplicate hash field".
func dupWhat(t Type) string {
	k, _ := KindOf(t)
	if k == KindHash {
		return "duplicate hash field"
	}
	return "duplicate " + k.String() + " member"
}

// errStopWalk ends an internal walk early.
var errStopWalk = errStop{}

type errStop struct{}

func (errStop) Error() string { return "stop" }
