package digest

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"redback/internal/rdb"
)

// TestDigest_PairedTerms checks the two-lane computation of set, sorted-set
// and hash terms against the one-element-at-a-time definition, for odd and
// even counts and with elements too long for one block in between.
func TestDigest_PairedTerms(t *testing.T) {
	zero := [20]byte{}
	elem := func(i int) []byte {
		if i%5 == 3 {
			return []byte(strings.Repeat("long", 20) + strconv.Itoa(i)) // > 55 bytes
		}
		return []byte("m" + strconv.Itoa(i))
	}
	for n := 1; n <= 9; n++ {
		var members, zpairs, hpairs [][]byte
		var scores []float64
		setTerm := refMix(zero, be32(2))
		zsetTerm := refMix(zero, be32(3))
		hashTerm := refMix(zero, be32(4))
		for i := range n {
			m := elem(i)
			members = append(members, m)
			setTerm = refXor(setTerm, m)
			score := float64(i) + 0.25
			scores = append(scores, score)
			zpairs = append(zpairs, m, []byte(strconv.FormatFloat(score, 'g', 17, 64)))
			e := refMix(refMix(zero, m), AppendScore(nil, score, Score70))
			zsetTerm = refXor(zsetTerm, e[:])
			v := elem(i + 1)
			hpairs = append(hpairs, m, v)
			h := refMix(refMix(zero, m), v)
			hashTerm = refXor(hashTerm, h[:])
		}
		tests := []struct {
			name string
			rec  *rdb.Record
			want [20]byte
		}{
			{"set", keyRec(0, "s", rdb.TypeSet, rdb.EncodeSet(members), -1), setTerm},
			{"zset listpack", keyRec(0, "z", rdb.TypeZSetListpack, rdb.EncodeBlob(rdb.BuildListpack(zpairs)), -1), zsetTerm},
			{"zset", keyRec(0, "z", rdb.TypeZSet2, rdb.EncodeZSet2(members, scores), -1), zsetTerm},
			{"hash", keyRec(0, "h", rdb.TypeHash, rdb.EncodeHash(hpairs), -1), hashTerm},
		}
		d := New(Options{}) // reused: nothing may leak from one value to the next
		for _, tt := range tests {
			got, err := d.KeyDigest(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if want := hex.EncodeToString(tt.want[:]); got != want {
				t.Errorf("%s of %d: KeyDigest = %s, want %s", tt.name, n, got, want)
			}
		}
	}
}
