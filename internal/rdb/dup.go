package rdb

import (
	"bytes"
	"hash/maphash"
	"slices"
)

// dupSet finds duplicate members (set members, zset members, hash fields)
// within one value: it keeps a 64-bit hash per member, sorts them at the
// end, and confirms an equal pair by walking the value again and comparing
// the bytes. Memory is 8 bytes per member, reused from value to value.
type dupSet struct {
	on   bool
	seed maphash.Seed
	h    []uint64
}

func (s *dupSet) reset(on bool) {
	if on && s.h == nil {
		s.seed = maphash.MakeSeed()
	}
	s.on, s.h = on, s.h[:0]
}

func (s *dupSet) add(b []byte) {
	if s.on {
		s.h = append(s.h, maphash.Bytes(s.seed, b))
	}
}

// candidate returns a hash seen more than once.
func (s *dupSet) candidate() (uint64, bool) {
	if len(s.h) < 2 {
		return 0, false
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
	seed := d.dups.seed
	var seen [][]byte
	var found []byte
	check := func(m []byte) error {
		if maphash.Bytes(seed, m) != h {
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
