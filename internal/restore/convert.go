package restore

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"redback/internal/cluster"
	"redback/internal/rdb"
	"redback/internal/resp"
)

// Limits of one converted command.
const (
	convMaxArgs  = 512     // elements (or pairs) per RPUSH/SADD/ZADD/HSET
	convMaxBytes = 1 << 20 // argument bytes per command
)

// converter turns one value into plain commands on a temporary key, then
// RENAME / RENAMENX onto the real key. Its batches all go to one connection
// so the commands run in order.
type converter struct {
	x *executor

	ctx   context.Context
	w     int
	db    int
	key   []byte
	tmp   []byte
	b     *batch
	n     int // replies of the current entry part
	first bool

	// the pending multi-argument command
	name  string
	nargs int
	args  []byte
	err   error
}

// decode walks the value of rec with v: from the spool file when it was
// streamed there.
func (x *executor) decode(rec *rdb.Record, v *rdb.Visitor) error {
	if rec.Streamed {
		return x.body.decode(rec, v)
	}
	return rdb.Decode(rec.Type, rec.Value, v)
}

func (cv *converter) convert(ctx context.Context, rec *rdb.Record, db int) error {
	x := cv.x
	cv.ctx, cv.db, cv.first, cv.err = ctx, db, true, nil
	cv.key = append(cv.key[:0], rec.Key...)
	x.tmpN++
	cv.tmp = strconv.AppendInt(append(cv.tmp[:0], x.tmpID...), x.tmpN, 10)
	if x.opts.Cluster {
		// The temporary key sits in the key's slot, on its node.
		cv.tmp = append(cv.tmp, cluster.Tag(cluster.Slot(rec.Key))...)
	}
	cv.w = x.next
	x.next = (x.next + 1) % len(x.workers)
	b, err := x.getBatch(ctx, db)
	if err != nil {
		return err
	}
	cv.b, cv.n = b, 0
	kind, _ := rdb.KindOf(rec.Type)
	maxBulk := x.plan.Target.MaxBulkLen
	tooBig := func(p []byte) error {
		if maxBulk > 0 && int64(len(p)) > maxBulk-64 {
			return fmt.Errorf("an element of %d bytes exceeds the target's proto-max-bulk-len %d", len(p), maxBulk)
		}
		return nil
	}
	var fieldTTLs int64
	var idmp rdb.StreamIDMP
	// A string goes out as SET and APPENDs of at most chunk bytes; one
	// streamed from a spool file arrives in pieces, gathered in str.
	chunk := convMaxBytes * 8
	if maxBulk > 0 && int64(chunk) > maxBulk/2 {
		chunk = int(maxBulk / 2)
	}
	var str []byte
	sent := false
	sendStr := func(p []byte) error {
		name := "APPEND"
		if !sent {
			name = "SET"
		}
		sent = true
		return cv.cmd(name, cv.tmp, p)
	}
	v := &rdb.Visitor{
		String: func(s []byte) error {
			for off := 0; off == 0 || off < len(s); off += chunk {
				if err := sendStr(s[off:min(off+chunk, len(s))]); err != nil {
					return err
				}
			}
			return nil
		},
		StringPiece: func(p []byte) error {
			// APPENDs of convMaxBytes: each batch then holds one, not
			// chunk (the string is not in memory: it should not be in
			// the batches either).
			for len(p) > 0 {
				n := min(len(p), min(chunk, convMaxBytes)-len(str))
				str, p = append(str, p[:n]...), p[n:]
				if len(str) == min(chunk, convMaxBytes) {
					if err := sendStr(str); err != nil {
						return err
					}
					str = str[:0]
				}
			}
			return nil
		},
		ListElem: func(e []byte) error {
			if err := tooBig(e); err != nil {
				return err
			}
			return cv.add("RPUSH", e)
		},
		SetMember: func(m []byte) error {
			if err := tooBig(m); err != nil {
				return err
			}
			return cv.add("SADD", m)
		},
		ZSetMember: func(m []byte, score float64) error {
			if err := tooBig(m); err != nil {
				return err
			}
			return cv.add("ZADD", formatScore(score), m)
		},
		HashField: func(f, val []byte, expireAt int64) error {
			if err := tooBig(val); err != nil {
				return err
			}
			if expireAt == 0 {
				return cv.add("HSET", f, val)
			}
			if !x.plan.Target.HashFieldTTL() {
				fieldTTLs++
				return cv.add("HSET", f, val)
			}
			if err := cv.cmd("HSET", cv.tmp, f, val); err != nil {
				return err
			}
			return cv.cmd("HPEXPIREAT", cv.tmp, []byte(strconv.FormatInt(expireAt, 10)), []byte("FIELDS"), []byte("1"), f)
		},
		StreamEntry: func(ms, seq uint64, fields [][]byte) error {
			args := make([][]byte, 0, len(fields)+3)
			args = append(args, cv.tmp, fmtID(rdb.StreamID{Ms: ms, Seq: seq}))
			args = append(args, fields...)
			return cv.cmd("XADD", args...)
		},
		Stream: func(s *rdb.StreamInfo) error {
			idmp = s.IDMP
			return cv.streamMeta(s)
		},
	}
	var derr error
	if kind == rdb.KindModule {
		derr = fmt.Errorf("module values (%s) cannot be converted to commands", rec.Module)
	} else {
		derr = x.decode(rec, v)
	}
	if derr == nil && kind == rdb.KindString && (len(str) > 0 || !sent) {
		derr = sendStr(str)
	}
	if derr == nil {
		derr = cv.flushArgs()
	}
	if derr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Nothing built yet may be half sent: clean the temporary key up
		// and count the key as failed.
		if err := cv.cmd("DEL", cv.tmp); err != nil {
			return err
		}
		cv.endEntry(true, -1)
		x.res.fail(db, rec.Key, "cannot convert: "+derr.Error())
		return cv.sendBatch()
	}
	if fieldTTLs > 0 {
		x.res.note("key %q: %d hash field TTLs dropped (the target is older than Redis 7.4)", rec.Key, fieldTTLs)
	}
	if idmp.IIDs > 0 || idmp.Added > 0 {
		// XADD has no form that recreates the IDs already seen.
		x.res.note("key %q: the stream's IDMP state (%d producers, %d idempotency IDs tracked, iids-added %d) dropped: plain commands cannot recreate it", rec.Key, idmp.Producers, idmp.IIDs, idmp.Added)
	}
	if rec.Expire > 0 {
		if err := cv.cmd("PEXPIREAT", cv.tmp, []byte(strconv.FormatInt(rec.Expire, 10))); err != nil {
			return err
		}
	}
	rename := "RENAMENX"
	if x.opts.Conflict == ConflictReplace {
		rename = "RENAME"
	}
	if err := cv.cmd(rename, cv.tmp, cv.key); err != nil {
		return err
	}
	ri := cv.n - 1
	if err := cv.cmd("DEL", cv.tmp); err != nil {
		return err
	}
	cv.endEntry(true, ri)
	return cv.sendBatch()
}

// endEntry closes the commands of the current part of a converted key in
// the batch: last with rename >= 0 for the final part, last with rename < 0
// for a key whose conversion failed locally (only its cleanup was sent; the
// failure is already counted).
func (cv *converter) endEntry(last bool, rename int) {
	b := cv.b
	koff := len(b.keys)
	b.keys = append(b.keys, cv.key...)
	e := entry{kind: kConvert, n: cv.n, koff: koff, klen: len(cv.key), rename: rename, first: cv.first, last: last}
	if last && rename < 0 {
		// a local failure: the reader must not count it again
		e.kind, e.last = kConvertCleanup, false
		e.first = false
	}
	b.ents = append(b.ents, e)
	cv.first, cv.n = false, 0
}

func (cv *converter) sendBatch() error {
	b := cv.b
	cv.b = nil
	return cv.x.send(cv.ctx, cv.w, b)
}

// cmd appends one command; a full batch goes out and a new one starts on
// the same connection.
func (cv *converter) cmd(name string, args ...[]byte) error {
	if err := cv.flushArgs(); err != nil {
		return err
	}
	return cv.raw(name, args...)
}

func (cv *converter) raw(name string, args ...[]byte) error {
	b := cv.b
	b.buf = resp.AppendArrayHeader(b.buf, len(args)+1)
	b.buf = resp.AppendBulkString(b.buf, name)
	for _, a := range args {
		b.buf = resp.AppendBulk(b.buf, a)
	}
	return cv.added()
}

// added counts a command appended to the batch; a full batch goes out
// and a new one starts on the same connection.
func (cv *converter) added() error {
	cv.n++
	if len(cv.b.buf) < cv.x.opts.BatchBytes {
		return nil
	}
	cv.endEntry(false, -1)
	if err := cv.sendBatch(); err != nil {
		return err
	}
	nb, err := cv.x.getBatch(cv.ctx, cv.db)
	if err != nil {
		return err
	}
	cv.b = nb
	return nil
}

// add appends elements to the pending variadic command name.
func (cv *converter) add(name string, elems ...[]byte) error {
	if cv.name != name || cv.nargs >= convMaxArgs*len(elems) || len(cv.args) >= convMaxBytes {
		if err := cv.flushArgs(); err != nil {
			return err
		}
		cv.name = name
	}
	for _, e := range elems {
		cv.args = resp.AppendBulk(cv.args, e)
		cv.nargs++
	}
	return nil
}

func (cv *converter) flushArgs() error {
	if cv.nargs == 0 {
		return nil
	}
	b := cv.b
	b.buf = resp.AppendArrayHeader(b.buf, cv.nargs+2)
	b.buf = resp.AppendBulkString(b.buf, cv.name)
	b.buf = resp.AppendBulk(b.buf, cv.tmp)
	b.buf = append(b.buf, cv.args...)
	cv.nargs, cv.args, cv.name = 0, cv.args[:0], ""
	if cap(cv.args) > 4*convMaxBytes {
		cv.args = nil
	}
	return cv.added()
}

// streamMeta restores what follows a stream's entries: last id and
// counters (XSETID), consumer groups, consumers and pending entries.
func (cv *converter) streamMeta(s *rdb.StreamInfo) error {
	v7 := cv.x.plan.Target.RDBVersion >= 10
	if s.Length == 0 {
		// XADD + MAXLEN 0 creates the (empty) stream key.
		id := s.LastID
		if id.Ms == 0 && id.Seq == 0 {
			id.Seq = 1
		}
		if err := cv.cmd("XADD", cv.tmp, []byte("MAXLEN"), []byte("0"), fmtID(id), []byte("f"), []byte("v")); err != nil {
			return err
		}
	}
	args := [][]byte{cv.tmp, fmtID(s.LastID)}
	if v7 {
		args = append(args, []byte("ENTRIESADDED"), []byte(strconv.FormatUint(s.EntriesAdded, 10)), []byte("MAXDELETEDID"), fmtID(s.MaxDeletedID))
	}
	if err := cv.cmd("XSETID", args...); err != nil {
		return err
	}
	for _, g := range s.Groups {
		args := [][]byte{[]byte("CREATE"), cv.tmp, g.Name, fmtID(g.LastDeliveredID)}
		if v7 && g.EntriesRead >= 0 {
			args = append(args, []byte("ENTRIESREAD"), []byte(strconv.FormatInt(g.EntriesRead, 10)))
		}
		if err := cv.cmd("XGROUP", args...); err != nil {
			return err
		}
		pel := make(map[rdb.StreamID]rdb.StreamPending, len(g.PEL))
		for _, p := range g.PEL {
			pel[p.ID] = p
		}
		for _, c := range g.Consumers {
			if err := cv.cmd("XGROUP", []byte("CREATECONSUMER"), cv.tmp, g.Name, c.Name); err != nil {
				return err
			}
			for _, id := range c.PEL {
				p := pel[id]
				if err := cv.cmd("XCLAIM", cv.tmp, g.Name, c.Name, []byte("0"), fmtID(id),
					[]byte("TIME"), []byte(strconv.FormatInt(p.DeliveryTime, 10)),
					[]byte("RETRYCOUNT"), []byte(strconv.FormatUint(p.DeliveryCount, 10)),
					[]byte("FORCE"), []byte("JUSTID")); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func fmtID(id rdb.StreamID) []byte {
	b := strconv.AppendUint(nil, id.Ms, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, id.Seq, 10)
}

// formatScore writes a score so that Redis parses back the same float64.
func formatScore(f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return []byte("+inf")
	case math.IsInf(f, -1):
		return []byte("-inf")
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64)
}
