package rdb

import (
	"strconv"
	"strings"
	"testing"
)

func TestDecode_DuplicatesAtAnySize(t *testing.T) {
	for _, n := range []int{2, 3, 8, 9, 16, 17, 100, maxDupTable - 1, maxDupTable, maxDupTable + 1, 3 * maxDupTable} {
		members := make([][]byte, n)
		for i := range members {
			members[i] = []byte("member:" + strconv.Itoa(i))
		}
		if err := Decode(TypeSet, EncodeSet(members), nil); err != nil {
			t.Fatalf("%d distinct members: %v", n, err)
		}
		for _, at := range [][2]int{{0, 1}, {0, n - 1}, {n / 2, n - 1}, {n - 2, n - 1}} {
			if at[0] == at[1] {
				continue
			}
			dup := append([][]byte(nil), members...)
			dup[at[1]] = dup[at[0]]
			err := Decode(TypeSet, EncodeSet(dup), nil)
			if err == nil || !strings.Contains(err.Error(), "duplicate set member") {
				t.Fatalf("%d members, %d repeats %d: got %v", n, at[1], at[0], err)
			}
		}
	}
	// The decoder is reused value to value: a clean value after a big one.
	var d decoder
	big := make([][]byte, 3*maxDupTable)
	for i := range big {
		big[i] = []byte(strconv.Itoa(i))
	}
	for range 3 {
		for _, v := range [][][]byte{big, bs("a", "b"), big[:40]} {
			if err := d.decode(TypeSet, EncodeSet(v), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Short members that differ in length and in the bytes the inline hash
// reads hash apart: the names a hash of numbered fields has ("f1220",
// "f12220", ...), and strings of 1 to 16 bytes that share their first and
// last words. A streamed value has no byte comparison to undo a false
// match: it would be refused as damaged.
func TestDupSet_ShortMembersHashApart(t *testing.T) {
	for trial := range 5 {
		var s dupSet
		s.reset(true)
		seen := map[uint64]string{}
		add := func(m string) {
			h := s.hash([]byte(m)) | 1
			if o, ok := seen[h]; ok && o != m {
				t.Fatalf("trial %d: %q and %q hash alike", trial, o, m)
			}
			seen[h] = m
		}
		for j := range 200_000 {
			add("f" + strconv.Itoa(j))
			add(strconv.Itoa(j))
		}
		for n := 1; n <= 16; n++ {
			for c := range 256 {
				add(strings.Repeat("a", n-1) + string(rune(c)))
			}
		}
	}
}
