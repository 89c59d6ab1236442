package digest

import "crypto/sha1"

// sha1Sum returns SHA1(p).
func sha1Sum(p []byte) sum { return sha1.Sum(p) }

// sha1Xor sets out to SHA1(a ⊕ b); out may be a or b.
func sha1Xor(out, a, b *sum) {
	var x sum
	for i := range x {
		x[i] = a[i] ^ b[i]
	}
	*out = sha1.Sum(x[:])
}
