package digest

import (
	"crypto/sha1"
	"encoding/binary"
)

// Scheduling the digest's SHA-1 work onto the two lanes of compress2.
//
// Almost every SHA1 here is of one or two blocks, and most wait for the
// one before: a compression alone is bound by its own latency, and a
// second, independent one beside it comes almost free. A key's work is
// therefore split into independent strands that advance side by side:
//
//   - the chain: the key term's serial steps t = SHA1(t ⊕ x), x being
//     SHA1(name), SHA1(type) and SHA1 of each ordered element (string,
//     list, stream) in turn; up to two inputs x wait in a queue, and each
//     step runs beside other work when there is some;
//   - ordered elements: SHA1(v) runs beside the chain's next step, then
//     joins the queue;
//   - unordered elements (set members, sorted set members, hash fields):
//     a few dependent compressions each, whose term is XORed into t, in
//     any order; an element advances stage by stage beside the chain's
//     remaining steps or beside the one pending element, and is left
//     pending itself when it has no partner; the terms collect in xacc
//     until the chain is done;
//   - a key's final SHA1(t), XORed into its db's accumulator, waits to run
//     beside the next key's name.
//
// Pending work holds copies (padded blocks, sums), never the caller's
// slices, and a fixed amount of it, so memory stays bounded.

// A lane is one compression: *out = the state after blk from *in.
type lane struct {
	out, in *sum
	blk     *[64]byte
}

func run2(a, b lane) { compress2(a.out, b.out, a.in, b.in, a.blk, b.blk) }
func run1(a lane)    { compress1(a.out, a.in, a.blk) }

// maxTwoBlocks is the longest input whose padding fits two blocks.
const maxTwoBlocks = 2*64 - 1 - 8

// A msg is a message being hashed block by block: its padded blocks,
// copied in, and the state after those compressed so far.
type msg struct {
	blk     [2 * 64]byte
	next, n int // blocks compressed, and in all
	st      sum // state after blk[:64*next]; the digest once done
}

// set copies p in, padded as FIPS 180-4 §5.1.1 prescribes. A p too long
// for two blocks is hashed at once with crypto/sha1 instead.
func (m *msg) set(p []byte) {
	m.next, m.n = 0, 0
	if len(p) > maxTwoBlocks {
		m.st = sha1.Sum(p)
		return
	}
	m.st = h0
	m.n = 1
	if len(p) > maxOneBlock {
		m.n = 2
	}
	b := m.blk[:64*m.n]
	clear(b[copy(b, p):])
	b[len(p)] = 0x80
	binary.BigEndian.PutUint64(b[len(b)-8:], uint64(len(p))*8)
}

// setNone makes m an empty piece of work, done at once.
func (m *msg) setNone() { m.next, m.n = 0, 0 }

func (m *msg) done() bool { return m.next == m.n }

// lane returns m's next compression, counted as done: run it before m.st
// is read.
func (m *msg) lane() lane {
	l := lane{&m.st, &m.st, (*[64]byte)(m.blk[64*m.next:])}
	m.next++
	return l
}

// padXor sets blk to the padded 20-byte message a ⊕ b.
func padXor(blk *[64]byte, a, b *sum) {
	*blk = [64]byte{}
	xor20(blk[:20], a[:], b[:])
	blk[20] = 0x80
	blk[63] = 20 * 8 // bit length 160, big-endian in blk[56:64]
}

// xorInto is d ⊕= s.
func xorInto(d, s *sum) { xor20(d[:], d[:], s[:]) }

// xor20 sets dst[:20] = a[:20] ⊕ b[:20] a word at a time (the byte loop
// showed in profiles).
func xor20(dst, a, b []byte) {
	le := binary.LittleEndian
	x0 := le.Uint64(a[0:]) ^ le.Uint64(b[0:])
	x1 := le.Uint64(a[8:]) ^ le.Uint64(b[8:])
	x2 := le.Uint32(a[16:]) ^ le.Uint32(b[16:])
	le.PutUint64(dst[0:], x0)
	le.PutUint64(dst[8:], x1)
	le.PutUint32(dst[16:], x2)
}

// zeroSum mixed in makes a mix step e = SHA1(e ⊕ 0), the plain SHA1(e)
// of an element's final term.
var zeroSum sum

// chainLane takes the oldest queued input x and returns the step
// t = SHA1(t ⊕ x). Requires d.nx > 0.
func (d *Digest) chainLane() lane {
	padXor(&d.xblk, &d.t, &d.x[0])
	d.x[0] = d.x[1]
	d.nx--
	return lane{&d.t, &h0, &d.xblk}
}

// push queues x as the chain's next input, first running the oldest
// step when the queue is full.
func (d *Digest) push(x *sum) {
	if d.nx == len(d.x) {
		run1(d.chainLane())
	}
	d.x[d.nx] = *x
	d.nx++
}

// side runs l beside the chain's next step, or alone when none is queued.
func (d *Digest) side(l lane) {
	if d.nx > 0 {
		run2(d.chainLane(), l)
		return
	}
	run1(l)
}

// ordered mixes an element into the chain: t = SHA1(t ⊕ SHA1(v)).
func (d *Digest) ordered(v []byte) {
	m := &d.om
	m.set(v)
	for !m.done() {
		d.side(m.lane())
	}
	d.push(&m.st)
}

// Kinds of unordered element, and the term each XORs into t.
const (
	setElem  = iota // SHA1(member)
	hashElem        // SHA1(e), e = SHA1(SHA1(SHA1(field)) ⊕ SHA1(value)) [⊕ SHA1("!!hexpire!!")]
	zsetElem        // SHA1(e), e = SHA1(SHA1(SHA1(member)) ⊕ SHA1(score text))
)

// An elem is an unordered element's work: its messages m (member or
// value) and s (score text), then mix steps on e, one compression per
// stage; l is the next one, ready to run.
type elem struct {
	kind    int
	step    int
	hexpire bool
	m, s    msg
	e       sum
	blk     [64]byte
	l       lane
}

// newElem returns the elem slot not pending, reset for an element of kind.
func (d *Digest) newElem(kind int) *elem {
	x := &d.elems[0]
	if x == d.pend {
		x = &d.elems[1]
	}
	x.kind, x.step, x.hexpire = kind, 0, false
	x.m.setNone()
	x.s.setNone()
	x.e = sum{}
	return x
}

// mix prepares the step e = SHA1(e ⊕ h).
func (x *elem) mix(h *sum) lane {
	padXor(&x.blk, &x.e, h)
	return lane{&x.e, &h0, &x.blk}
}

// advance takes in the result of x's last compression and prepares the
// next in x.l; when x is done it XORs x's term into xacc and returns false.
func (x *elem) advance(xacc *sum) bool {
	switch {
	case !x.m.done():
		x.l = x.m.lane()
		return true
	case !x.s.done():
		x.l = x.s.lane()
		return true
	}
	x.step++
	switch x.kind {
	case setElem:
		xorInto(xacc, &x.m.st)
		return false
	case hashElem:
		switch x.step {
		case 1: // e holds the field's term
			x.l = x.mix(&x.m.st)
			return true
		case 2:
			if x.hexpire {
				xorInto(&x.e, &hexpireHash)
			}
			x.l = x.mix(&zeroSum)
			return true
		}
	case zsetElem:
		switch x.step {
		case 1: // e starts at zero
			x.l = x.mix(&x.m.st)
			return true
		case 2:
			x.l = x.mix(&x.s.st)
			return true
		case 3:
			x.l = x.mix(&zeroSum)
			return true
		}
	}
	xorInto(xacc, &x.e)
	return false
}

// addElem runs x, just filled in, beside the pending elem or the chain's
// queued steps until x is done or has no partner left; in that case x
// becomes the pending elem.
func (d *Digest) addElem(x *elem) {
	if !x.advance(&d.xacc) {
		return
	}
	for {
		switch {
		case d.pend != nil:
			run2(d.pend.l, x.l)
			if !d.pend.advance(&d.xacc) {
				d.pend = nil
			}
		case d.nx > 0:
			run2(d.chainLane(), x.l)
		default:
			d.pend = x
			return
		}
		if !x.advance(&d.xacc) {
			return
		}
	}
}

// endValue finishes the pending elem and the chain, and XORs the
// unordered elements' terms into t.
func (d *Digest) endValue() {
	if x := d.pend; x != nil {
		d.pend = nil
		for {
			d.side(x.l)
			if !x.advance(&d.xacc) {
				break
			}
		}
	}
	for d.nx > 0 {
		run1(d.chainLane())
	}
	xorInto(&d.t, &d.xacc)
	d.xacc = sum{}
}

// dropValue forgets the work of a value that did not decode.
func (d *Digest) dropValue() {
	d.pend, d.nx, d.xacc = nil, 0, sum{}
}

// startKey hashes the key name, beside the previous key's final term, and
// queues it as the chain's first input: t = SHA1(0 ⊕ SHA1(name)).
func (d *Digest) startKey(name []byte) {
	d.t, d.nx = sum{}, 0
	m := &d.om
	m.set(name)
	for !m.done() {
		l := m.lane()
		if d.finAcc != nil {
			run2(lane{&d.finOut, &h0, &d.finBlk}, l)
			xorInto(d.finAcc, &d.finOut)
			d.finAcc = nil
			continue
		}
		run1(l)
	}
	d.push(&m.st)
}

// endKey leaves SHA1(t) to be XORed into acc beside the next key's name.
func (d *Digest) endKey(acc *sum) {
	d.flushFinal() // left over when the name had no block to run beside
	padXor(&d.finBlk, &d.t, &zeroSum)
	d.finAcc = acc
}

// flushFinal XORs the last key's final term in: before the accumulators
// are read.
func (d *Digest) flushFinal() {
	if d.finAcc == nil {
		return
	}
	run1(lane{&d.finOut, &h0, &d.finBlk})
	xorInto(d.finAcc, &d.finOut)
	d.finAcc = nil
}
