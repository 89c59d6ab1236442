package rdb

// Streaming a big string value (Options.StreamStrings): its bytes go to
// the Visitor as they arrive and leave the read buffer at once; an
// LZF-compressed one is decompressed through a window that keeps the last
// 8 KiB of output, all an LZF back reference can reach.

// beginStringStream starts streaming the string value whose length
// header was just captured: the header goes to Raw and is dropped.
func (r *Reader) beginStringStream() (*Visitor, error) {
	v, err := r.beginStream(TypeString)
	if err != nil {
		return nil, err
	}
	head := r.captured()[r.valStart:]
	if err := r.passRaw(head); err != nil {
		return nil, err
	}
	r.streaming, r.streamed = true, int64(len(head))
	r.mark, r.valStart = r.pos, 0
	return v, nil
}

// streamRaw streams a plain string of n bytes.
func (r *Reader) streamRaw(n uint64) error {
	if n > r.max-min(uint64(r.pos-r.mark), r.max) { // as copyN
		return errAt(int(r.Offset()), "string of %d bytes exceeds MaxValueBytes %d", n, r.max)
	}
	v, err := r.beginStringStream()
	if err != nil {
		return err
	}
	for have := uint64(0); have < n; {
		if r.pos == r.end {
			if err := r.fill(1); err != nil {
				return r.truncated(err, n, have)
			}
		}
		k := int(min(n-have, uint64(r.end-r.pos)))
		p := r.buf[r.pos : r.pos+k]
		r.pos += k
		if v.StringPiece != nil {
			if err := v.StringPiece(p); err != nil {
				return err
			}
		}
		if err := r.passRaw(p); err != nil {
			return err
		}
		r.mark = r.pos
		r.streamed += int64(k)
		have += uint64(k)
	}
	return nil
}

// lzfMaxInstr is the longest LZF instruction: a control byte and a
// literal run of 32 bytes.
const lzfMaxInstr = 33

// streamLZF streams an LZF-compressed string (its header at off) of clen
// compressed and ulen uncompressed bytes.
func (r *Reader) streamLZF(off int64, clen, ulen uint64) error {
	if ulen > clen*lzfMaxRatio+lzfMaxRatio {
		return errAt(int(off), "LZF uncompressed length %d implausible for %d compressed bytes", ulen, clen)
	}
	v, err := r.beginStringStream()
	if err != nil {
		return err
	}
	z := &r.lzf
	z.reset(ulen, v.StringPiece)
	for left := clen; left > 0; {
		if need := int(min(left, lzfMaxInstr)); r.end-r.pos < need {
			if err := r.fill(need); err != nil {
				return r.truncated(err, clen, clen-left+uint64(r.end-r.pos))
			}
		}
		avail := min(left, uint64(r.end-r.pos))
		in := r.buf[r.pos : r.pos+int(avail)]
		used, err := z.decode(in, avail == left)
		if pe, ok := err.(*posError); ok {
			pe.off += int(r.Offset())
			return pe
		} else if err != nil {
			return err
		}
		if err := r.passRaw(in[:used]); err != nil {
			return err
		}
		r.pos += used
		r.mark = r.pos
		r.streamed += int64(used)
		left -= uint64(used)
	}
	if z.total != z.ulen {
		return errAt(int(r.Offset()), "lzf: output is %d bytes, declared %d", z.total, z.ulen)
	}
	return z.flush()
}

// LZF stream window: the history a back reference may reach (its
// farthest distance is 0x1fff+1), and the output gathered beyond it
// before it goes to the visitor.
const (
	lzfWindow = 8 << 10
	lzfPiece  = 64 << 10
	lzfMaxRun = 7 + 255 + 2 // the longest output of one instruction
)

// lzfStream decompresses LZF data that arrives in parts.
type lzfStream struct {
	out   []byte // out[:op] is the output kept; out[emit:op] not yet emitted
	op    int
	emit  int
	total uint64 // output produced in all
	ulen  uint64 // the declared length
	fn    func([]byte) error
}

func (z *lzfStream) reset(ulen uint64, fn func([]byte) error) {
	if z.out == nil {
		z.out = make([]byte, lzfWindow+lzfPiece)
	}
	z.op, z.emit, z.total, z.ulen, z.fn = 0, 0, 0, ulen, fn
}

// flush emits the output not yet emitted and keeps the last lzfWindow
// bytes as history.
func (z *lzfStream) flush() error {
	if z.fn != nil && z.op > z.emit {
		if err := z.fn(z.out[z.emit:z.op]); err != nil {
			return err
		}
	}
	if z.op > lzfWindow {
		copy(z.out, z.out[z.op-lzfWindow:z.op])
		z.op = lzfWindow
	}
	z.emit = z.op
	return nil
}

// decode runs the whole instructions at the start of in and returns how
// many bytes they took; with final, in is the rest of the data and an
// instruction cut short is an error. Errors are posErrors relative to in,
// or the visitor's as they are.
func (z *lzfStream) decode(in []byte, final bool) (int, error) {
	ip := 0
	for ip < len(in) {
		if len(z.out)-z.op < lzfMaxRun {
			if err := z.flush(); err != nil {
				return ip, err
			}
		}
		c := int(in[ip])
		if c < 32 {
			n := c + 1
			if ip+1+n > len(in) {
				if final {
					return ip, errAt(ip, "lzf: literal run of %d bytes beyond the input", n)
				}
				break
			}
			if z.total+uint64(n) > z.ulen {
				return ip, errAt(ip, "lzf: output longer than the declared %d bytes", z.ulen)
			}
			copy(z.out[z.op:], in[ip+1:ip+1+n])
			z.op += n
			z.total += uint64(n)
			ip += 1 + n
			continue
		}
		n, size := c>>5, 2
		if n == 7 {
			size = 3
		}
		if ip+size > len(in) {
			if final {
				return ip, errAt(ip, "lzf: truncated back reference")
			}
			break
		}
		if n == 7 {
			n += int(in[ip+1])
		}
		n += 2
		dist := (c&0x1f)<<8 + int(in[ip+size-1]) + 1
		if uint64(dist) > z.total {
			return ip, errAt(ip, "lzf: back reference %d bytes back, before the start of the output (%d bytes)", dist, z.total)
		}
		if z.total+uint64(n) > z.ulen {
			return ip, errAt(ip, "lzf: output longer than the declared %d bytes", z.ulen)
		}
		// The window holds min(total, lzfWindow) bytes of history and
		// dist <= lzfWindow, so ref >= 0.
		ref := z.op - dist
		if dist >= n {
			copy(z.out[z.op:z.op+n], z.out[ref:ref+n])
		} else {
			for i := range n {
				z.out[z.op+i] = z.out[ref+i]
			}
		}
		z.op += n
		z.total += uint64(n)
		ip += size
	}
	return ip, nil
}
