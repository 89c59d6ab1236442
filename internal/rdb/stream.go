package rdb

import (
	"bytes"
	"encoding/binary"
)

const (
	streamFlagDeleted    = 1
	streamFlagSameFields = 2
)

// streamNodePiece walks node i of a stream (types 15, 19, 21, 26): its
// 16-byte master ID key and its listpack.
func (d *decoder) streamNodePiece(i int) error {
	pc := &d.pc
	key, off, _, _, err := d.str()
	if err != nil {
		return err
	}
	if len(key) != 16 {
		return errAt(off, "stream node %d: key is %d bytes, want 16", i, len(key))
	}
	if i > 0 && bytes.Compare(key, pc.prevKey[:]) <= 0 {
		return errAt(off, "stream node %d: key not above the previous node's", i)
	}
	copy(pc.prevKey[:], key)
	master := StreamID{binary.BigEndian.Uint64(key), binary.BigEndian.Uint64(key[8:])}
	lp, off, dataOff, comp, err := d.str()
	if err != nil {
		return err
	}
	n, fid, err := d.streamNode(lp, master, pc.v.StreamEntry)
	if err != nil {
		return rebase(err, off, dataOff, comp, "stream node "+itoa(i)+" listpack")
	}
	if n > 0 && !pc.haveFirst {
		pc.first, pc.haveFirst = fid, true
	}
	return nil
}

// streamTail walks what follows a stream's nodes: its metadata, consumer
// groups and (type 26) IDMP state.
func (d *decoder) streamTail() error {
	t, v, first := d.pc.t, d.pc.v, d.pc.first
	var err error
	info := StreamInfo{}
	lens := []*uint64{&info.Length, &info.LastID.Ms, &info.LastID.Seq}
	if t != TypeStreamListpacks {
		lens = append(lens, &info.FirstID.Ms, &info.FirstID.Seq, &info.MaxDeletedID.Ms, &info.MaxDeletedID.Seq, &info.EntriesAdded)
	}
	for _, p := range lens {
		if *p, err = d.length("stream metadata"); err != nil {
			return err
		}
	}
	if t == TypeStreamListpacks {
		info.EntriesAdded = info.Length
		info.FirstID = first
	}
	ngroups, err := d.count("stream group count", 3)
	if err != nil {
		return err
	}
	want := v.Stream != nil
	if d.pel == nil {
		d.pel = make(map[[16]byte]uint8)
	}
	for range ngroups {
		name, _, _, _, err := d.str()
		if err != nil {
			return err
		}
		d.gname = append(d.gname[:0], name...) // outlives later str calls
		name = d.gname
		var g StreamGroup
		if want {
			g.Name = append([]byte{}, name...)
		}
		if g.LastDeliveredID.Ms, err = d.length("group last id"); err != nil {
			return err
		}
		if g.LastDeliveredID.Seq, err = d.length("group last id"); err != nil {
			return err
		}
		g.EntriesRead = -1
		if t != TypeStreamListpacks {
			er, err := d.length("group entries_read")
			if err != nil {
				return err
			}
			g.EntriesRead = int64(er)
		}
		npel, err := d.count("group PEL size", 25)
		if err != nil {
			return err
		}
		clear(d.pel)
		for range npel {
			off := d.p
			b, err := d.fixed(24)
			if err != nil {
				return err
			}
			var id [16]byte
			copy(id[:], b)
			if d.pel[id] != 0 {
				return errAt(off, "group %q: duplicate PEL entry %s", name, fmtID(id))
			}
			d.pel[id] = 1
			cnt, err := d.length("PEL delivery count")
			if err != nil {
				return err
			}
			if want {
				g.PEL = append(g.PEL, StreamPending{ID: idOf(id), DeliveryTime: int64(binary.LittleEndian.Uint64(b[16:])), DeliveryCount: cnt})
			}
		}
		ncons, err := d.count("consumer count", 10)
		if err != nil {
			return err
		}
		claimed := 0
		for range ncons {
			cname, _, _, _, err := d.str()
			if err != nil {
				return err
			}
			var c StreamConsumer
			if want {
				c.Name = append([]byte{}, cname...)
			}
			if c.SeenTime, err = d.int64LE(); err != nil {
				return err
			}
			c.ActiveTime = c.SeenTime
			if t == TypeStreamListpacks3 || t == TypeStreamListpacks4 {
				if c.ActiveTime, err = d.int64LE(); err != nil {
					return err
				}
			}
			np, err := d.count("consumer PEL size", 16)
			if err != nil {
				return err
			}
			for range np {
				off := d.p
				b, _ := d.fixed(16) // count checked the bytes are there
				var id [16]byte
				copy(id[:], b)
				switch d.pel[id] {
				case 0:
					return errAt(off, "consumer %q: PEL entry %s not in the group PEL", cname, fmtID(id))
				case 2:
					return errAt(off, "consumer %q: PEL entry %s owned twice", cname, fmtID(id))
				}
				d.pel[id] = 2
				claimed++
				if want {
					c.PEL = append(c.PEL, idOf(id))
				}
			}
			if want {
				g.Consumers = append(g.Consumers, c)
			}
		}
		if claimed != npel {
			return errAt(d.p, "group %q: %d PEL entries have no consumer", name, npel-claimed)
		}
		if want {
			info.Groups = append(info.Groups, g)
		}
	}
	if t == TypeStreamListpacks4 {
		if err := d.streamIDMP(&info.IDMP); err != nil {
			return err
		}
	}
	if want {
		return v.Stream(&info)
	}
	return nil
}

// streamIDMP reads the IDMP state that type 26 (Redis 8.6) appends:
// duration (seconds) and max entries, the producers (pid, then each IID
// with the entry ID it produced, as two lengths), then the iids-added and
// iids-duplicates counters. Layout as Redis 8.6.3 writes it (DUMP of a
// stream after XADD ... IDMP pid iid and XCFGSET).
func (d *decoder) streamIDMP(m *StreamIDMP) error {
	var err error
	if m.Duration, err = d.length("stream IDMP duration"); err != nil {
		return err
	}
	if m.MaxSize, err = d.length("stream IDMP max entries"); err != nil {
		return err
	}
	np, err := d.count("stream IDMP producer count", 2)
	if err != nil {
		return err
	}
	m.Producers = np
	for range np {
		if _, _, _, _, err := d.str(); err != nil {
			return err
		}
		ne, err := d.count("stream IDMP entry count", 3)
		if err != nil {
			return err
		}
		for range ne {
			if _, _, _, _, err := d.str(); err != nil {
				return err
			}
			for range 2 {
				if _, err := d.length("stream IDMP entry id"); err != nil {
					return err
				}
			}
		}
		m.IIDs += ne
	}
	if m.Added, err = d.length("stream IDMP iids added"); err != nil {
		return err
	}
	m.Duplicates, err = d.length("stream IDMP iids duplicates")
	return err
}

func idOf(b [16]byte) StreamID {
	return StreamID{binary.BigEndian.Uint64(b[:]), binary.BigEndian.Uint64(b[8:])}
}

func fmtID(b [16]byte) string {
	id := idOf(b)
	return utoa(id.Ms) + "-" + utoa(id.Seq)
}

// lpInt reads the next listpack entry, which must be an integer.
func lpInt(it *lpIter, what string) (int64, error) {
	off := it.p
	e, ok, err := it.next()
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, errAt(off, "stream: listpack ends before %s", what)
	}
	if !e.isInt {
		return 0, errAt(off, "stream: %s is not an integer", what)
	}
	return e.v, nil
}

// streamNode walks one node listpack: the master entry, then the entries.
// It returns the number of live entries and the first live ID.
func (d *decoder) streamNode(lp []byte, master StreamID, cb func(ms, seq uint64, fields [][]byte) error) (int, StreamID, error) {
	var first StreamID
	it, err := newLPIter(lp)
	if err != nil {
		return 0, first, err
	}
	if it.p == len(lp)-1 {
		return 0, first, errAt(it.p, "stream: empty listpack")
	}
	count, err := lpInt(&it, "master entry count")
	if err != nil {
		return 0, first, err
	}
	deleted, err := lpInt(&it, "master deleted count")
	if err != nil {
		return 0, first, err
	}
	nf, err := lpInt(&it, "master field count")
	if err != nil {
		return 0, first, err
	}
	if count < 0 || deleted < 0 || nf < 0 || nf > int64(len(lp)) {
		return 0, first, errAt(lpHeaderSize, "stream: bad master entry (count %d, deleted %d, fields %d)", count, deleted, nf)
	}
	d.ents = d.ents[:0]
	for range nf {
		off := it.p
		e, ok, err := it.next()
		if err != nil {
			return 0, first, err
		}
		if !ok {
			return 0, first, errAt(off, "stream: listpack ends inside the master fields")
		}
		d.ents = append(d.ents, e)
	}
	masterN := len(d.ents)
	off := it.p
	if z, err := lpInt(&it, "master terminator"); err != nil {
		return 0, first, err
	} else if z != 0 {
		return 0, first, errAt(off, "stream: master terminator is %d, want 0", z)
	}
	var nLive, nDel int64
	for {
		entOff := it.p
		e, ok, err := it.next()
		if err != nil {
			return 0, first, err
		}
		if !ok {
			break
		}
		if !e.isInt {
			return 0, first, errAt(entOff, "stream: entry flags are not an integer")
		}
		flags := e.v
		msd, err := lpInt(&it, "entry ms delta")
		if err != nil {
			return 0, first, err
		}
		seqd, err := lpInt(&it, "entry seq delta")
		if err != nil {
			return 0, first, err
		}
		d.ents = d.ents[:masterN]
		var want int64
		if flags&streamFlagSameFields != 0 {
			for range masterN {
				off := it.p
				e, ok, err := it.next()
				if err != nil {
					return 0, first, err
				}
				if !ok {
					return 0, first, errAt(off, "stream: listpack ends inside an entry")
				}
				d.ents = append(d.ents, e)
			}
			want = int64(masterN) + 3
		} else {
			n, err := lpInt(&it, "entry field count")
			if err != nil {
				return 0, first, err
			}
			if n < 0 || n > int64(len(lp)) {
				return 0, first, errAt(entOff, "stream: entry field count %d", n)
			}
			for range 2 * n {
				off := it.p
				e, ok, err := it.next()
				if err != nil {
					return 0, first, err
				}
				if !ok {
					return 0, first, errAt(off, "stream: listpack ends inside an entry")
				}
				d.ents = append(d.ents, e)
			}
			want = 2*n + 4
		}
		cntOff := it.p
		lpc, err := lpInt(&it, "entry lp_count")
		if err != nil {
			return 0, first, err
		}
		if lpc != want {
			return 0, first, errAt(cntOff, "stream: entry lp_count %d, want %d", lpc, want)
		}
		if flags&streamFlagDeleted != 0 {
			nDel++
			continue
		}
		id := StreamID{master.Ms + uint64(msd), master.Seq + uint64(seqd)}
		if nLive == 0 {
			first = id
		}
		nLive++
		if cb != nil {
			if err := cb(id.Ms, id.Seq, d.entryFields(masterN, flags&streamFlagSameFields != 0)); err != nil {
				return 0, first, err
			}
		}
	}
	if nLive != count || nDel != deleted {
		return 0, first, errAt(lpHeaderSize, "stream: master entry says %d live and %d deleted entries, found %d and %d", count, deleted, nLive, nDel)
	}
	return int(nLive), first, nil
}

// entryFields builds the f1 v1 f2 v2 ... slice of the current entry, whose
// values (and, unless sameFields, fields) follow the master fields in d.ents.
func (d *decoder) entryFields(masterN int, sameFields bool) [][]byte {
	d.arena = d.arena[:0]
	d.offs = d.offs[:0]
	d.fields = d.fields[:0]
	add := func(e *lpEntry) {
		if e.isInt {
			s := len(d.arena)
			d.arena = appendInt(d.arena, e.v)
			d.offs = append(d.offs, s, len(d.arena))
		} else {
			d.offs = append(d.offs, -1, -1)
		}
	}
	order := d.order[:0]
	defer func() { d.order = order }()
	if sameFields {
		for i := range masterN {
			order = append(order, i, masterN+i)
		}
	} else {
		for i := masterN; i < len(d.ents); i++ {
			order = append(order, i)
		}
	}
	for _, i := range order {
		add(&d.ents[i])
	}
	for k, i := range order {
		e := &d.ents[i]
		if e.isInt {
			d.fields = append(d.fields, d.arena[d.offs[2*k]:d.offs[2*k+1]])
		} else {
			d.fields = append(d.fields, e.s)
		}
	}
	return d.fields
}
