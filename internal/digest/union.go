package digest

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// clusterConst is C = SHA1(SHA1(00 00 00 00)): the part of a db-0 digest
// that does not depend on the keys (mixD of db id 0 into zero).
var clusterConst = func() (c sum) {
	mixD(&c, []byte{0, 0, 0, 0})
	return c
}()

// Union returns the DEBUG DIGEST that one server holding every key of the
// given db-0 digests would report: digests of disjoint key sets (cluster
// nodes, say) as 40 hex characters each. A node's digest is C ⊕ K (K the
// XOR of its key terms), an empty one 40 zeros, so the union is the XOR of
// the non-empty digests, XORed with C once more when their count is even.
func Union(digests ...string) (string, error) {
	var out sum
	n := 0
	for _, d := range digests {
		b, err := hex.DecodeString(d)
		if err != nil || len(b) != len(out) {
			return "", fmt.Errorf("digest %q is not 40 hex characters", d)
		}
		if strings.Trim(d, "0") == "" {
			continue
		}
		n++
		for i := range out {
			out[i] ^= b[i]
		}
	}
	if n > 0 && n%2 == 0 {
		for i := range out {
			out[i] ^= clusterConst[i]
		}
	}
	return hex.EncodeToString(out[:]), nil
}
