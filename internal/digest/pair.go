package digest

import "encoding/binary"

// Set members, sorted-set members and hash fields each add an independent
// term to the value's digest (terms combine by XOR), and each term is a
// short chain of SHA-1 compressions, every one depending on the last. A
// chain of SHA-NI rounds leaves the SHA unit mostly waiting, so the terms
// of two elements are computed together by the two-lane functions
// sha1Blocks2 and sha1Xor20x2: the first element waits in pending until a
// second one of the same value arrives, or flush (at the end of the value)
// computes it alone. Only for inputs that fit one block, with SHA-NI.

// maxOneBlock is the longest input whose padded form fits one 64-byte block.
const maxOneBlock = 64 - 9

// Pending element kinds.
const (
	pendNone = iota
	pendSet
	pendZSet
	pendHash
)

// pending is an element whose term is not computed yet.
type pending struct {
	kind int
	a, b [64]byte // padded blocks: member (set, zset), score text (zset), value (hash)
	e    sum      // hash: the field term
	exp  bool     // hash: the field has a TTL
}

// pad sets blk to the one-block padded form of p (len(p) <= maxOneBlock).
func pad(blk *[64]byte, p []byte) {
	*blk = [64]byte{}
	copy(blk[:], p)
	blk[len(p)] = 0x80
	binary.BigEndian.PutUint64(blk[56:], uint64(len(p))*8)
}

var zeroSum sum

// xorInto is d ⊕= a ⊕ b.
func xorInto(d, a, b *sum) {
	for i := range d {
		d[i] ^= a[i] ^ b[i]
	}
}

// pairSetMember adds SHA1(m) for a set member.
func (d *Digest) pairSetMember(m []byte) {
	p := &d.pend
	if p.kind != pendSet {
		d.flush()
		pad(&p.a, m)
		p.kind = pendSet
		return
	}
	var blk [64]byte
	pad(&blk, m)
	var hA, hB sum
	sha1Blocks2(&hA, &hB, &p.a[0], &blk[0])
	xorInto(d.cur, &hA, &hB)
	p.kind = pendNone
}

// pairZSetMember adds SHA1(SHA1(SHA1(SHA1(m)) ⊕ SHA1(score))) for a sorted-set
// member: mixD of the member and of the score text into a zero sum, then
// xorS into the value.
func (d *Digest) pairZSetMember(m, score []byte) {
	p := &d.pend
	if p.kind != pendZSet {
		d.flush()
		pad(&p.a, m)
		pad(&p.b, score)
		p.kind = pendZSet
		return
	}
	var bm, bs [64]byte
	pad(&bm, m)
	pad(&bs, score)
	var hA, hB, eA, eB sum
	sha1Blocks2(&hA, &hB, &p.a[0], &bm[0])
	sha1Xor20x2(&eA, &zeroSum, &hA, &eB, &zeroSum, &hB)
	sha1Blocks2(&hA, &hB, &p.b[0], &bs[0])
	sha1Xor20x2(&eA, &eA, &hA, &eB, &eB, &hB)
	sha1Xor20x2(&hA, &eA, &zeroSum, &hB, &eB, &zeroSum)
	xorInto(d.cur, &hA, &hB)
	p.kind = pendNone
}

// pairHashField adds SHA1(SHA1(e ⊕ SHA1(v)) [⊕ SHA1("!!hexpire!!")]) for a
// hash field whose term so far (mixD of the field name) is e.
func (d *Digest) pairHashField(e *sum, v []byte, exp bool) {
	p := &d.pend
	if p.kind != pendHash {
		d.flush()
		pad(&p.a, v)
		p.e, p.exp, p.kind = *e, exp, pendHash
		return
	}
	var bv [64]byte
	pad(&bv, v)
	var hA, hB sum
	eA, eB := p.e, *e
	sha1Blocks2(&hA, &hB, &p.a[0], &bv[0])
	sha1Xor20x2(&eA, &eA, &hA, &eB, &eB, &hB)
	if p.exp {
		xorInto(&eA, &hexpireHash, &zeroSum)
	}
	if exp {
		xorInto(&eB, &hexpireHash, &zeroSum)
	}
	sha1Xor20x2(&hA, &eA, &zeroSum, &hB, &eB, &zeroSum)
	xorInto(d.cur, &hA, &hB)
	p.kind = pendNone
}

// flush adds the term of the pending element, if any, on its own.
func (d *Digest) flush() {
	p := &d.pend
	var h, e sum
	switch p.kind {
	case pendSet:
		sha1Blocks(&h, &p.a[0], 1)
		xorInto(d.cur, &h, &zeroSum)
	case pendZSet:
		sha1Blocks(&h, &p.a[0], 1)
		sha1Xor(&e, &zeroSum, &h)
		sha1Blocks(&h, &p.b[0], 1)
		sha1Xor(&e, &e, &h)
		xorS(d.cur, &e)
	case pendHash:
		e = p.e
		sha1Blocks(&h, &p.a[0], 1)
		sha1Xor(&e, &e, &h)
		if p.exp {
			xorInto(&e, &hexpireHash, &zeroSum)
		}
		xorS(d.cur, &e)
	}
	p.kind = pendNone
}
