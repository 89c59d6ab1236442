package rdb

// Tee returns a Visitor that calls a's callback and then b's for every
// element (nil when both are nil; a itself when b is nil, and the
// reverse): two consumers of one streamed value, a digest and a sample's
// value digest, say. The first error stops the walk.
func Tee(a, b *Visitor) *Visitor {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return &Visitor{
		String:      tee1(a.String, b.String),
		StringPiece: tee1(a.StringPiece, b.StringPiece),
		Raw:         tee1(a.Raw, b.Raw),
		ListElem:    tee1(a.ListElem, b.ListElem),
		SetMember:   tee1(a.SetMember, b.SetMember),
		ZSetMember: func(m []byte, score float64) error {
			if a.ZSetMember != nil {
				if err := a.ZSetMember(m, score); err != nil {
					return err
				}
			}
			if b.ZSetMember != nil {
				return b.ZSetMember(m, score)
			}
			return nil
		},
		HashField: func(f, v []byte, expireAt int64) error {
			if a.HashField != nil {
				if err := a.HashField(f, v, expireAt); err != nil {
					return err
				}
			}
			if b.HashField != nil {
				return b.HashField(f, v, expireAt)
			}
			return nil
		},
		StreamEntry: func(ms, seq uint64, fields [][]byte) error {
			if a.StreamEntry != nil {
				if err := a.StreamEntry(ms, seq, fields); err != nil {
					return err
				}
			}
			if b.StreamEntry != nil {
				return b.StreamEntry(ms, seq, fields)
			}
			return nil
		},
		Stream: func(s *StreamInfo) error {
			if a.Stream != nil {
				if err := a.Stream(s); err != nil {
					return err
				}
			}
			if b.Stream != nil {
				return b.Stream(s)
			}
			return nil
		},
	}
}

// tee1 calls f and then g (either may be nil).
func tee1(f, g func([]byte) error) func([]byte) error {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(p []byte) error {
		if err := f(p); err != nil {
			return err
		}
		return g(p)
	}
}
