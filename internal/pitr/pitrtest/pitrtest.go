// Package pitrtest writes log generations in the repository format of
// internal/catalog (generation manifest, segment manifests with their index,
// sealed AOF objects) for tests of point-in-time restore, without a shipper.
package pitrtest

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/rdb"
	"redback/internal/resp"
	"redback/internal/snapshot"
	"redback/internal/storage"
)

// Cmd is one command of a replication stream.
type Cmd struct {
	Args   [][]byte
	Offset int64 // replication offset before it
	Ms     int64 // receive time, unix ms
	// From, when set, makes the time uncertain: the command ran in
	// (From, Ms] (the 4th element of its checkpoint).
	From int64
}

// Len is the number of stream bytes of c.
func (c Cmd) Len() int64 { return resp.CommandLen(c.Args...) }

// Control reports whether c is control traffic (PING, REPLCONF), which
// counts in offsets but is not stored.
func (c Cmd) Control() bool {
	n := strings.ToUpper(string(c.Args[0]))
	return n == "PING" || n == "REPLCONF"
}

// Generation describes a generation to write.
type Generation struct {
	ID           string
	ReplID       string
	StartOffset  int64
	BaseSnapshot string
	Created      time.Time
	Cmds         []Cmd
	// SplitAt lists indexes into Cmds where a new segment starts (sorted).
	SplitAt []int
	// Omit lists segment numbers (0-based) not written: gaps.
	Omit []int
	// Pack seals the objects (zero: zstd, no encryption).
	Pack pack.Options
	// NoTimestamps leaves out the #TS annotations.
	NoTimestamps bool
	Ended        bool
}

// Write stores g's manifest, segments and data objects and returns the
// segment manifests written.
func Write(ctx context.Context, b storage.Backend, g Generation) ([]*catalog.Segment, error) {
	if g.Created.IsZero() {
		g.Created = time.Now()
	}
	var out []*catalog.Segment
	bounds := append(append([]int{0}, g.SplitAt...), len(g.Cmds))
	db := 0
	off := g.StartOffset
	for si := 0; si+1 < len(bounds); si++ {
		cmds := g.Cmds[bounds[si]:bounds[si+1]]
		seg, nextDB, end, err := segment(g, cmds, db, off)
		if err != nil {
			return nil, err
		}
		db, off = nextDB, end
		omit := false
		for _, o := range g.Omit {
			omit = omit || o == si
		}
		if omit || seg == nil {
			continue
		}
		if err := writeSegment(ctx, b, g, seg); err != nil {
			return nil, err
		}
		out = append(out, seg.Segment)
	}
	gm := catalog.Generation{Format: catalog.FormatVersion, ID: g.ID, ReplID: g.ReplID, StartOffset: g.StartOffset,
		BaseSnapshot: g.BaseSnapshot, Created: g.Created.UTC(), Source: catalog.Source{Address: "redis://127.0.0.1"}, Mode: "replication"}
	if g.Ended {
		gm.Ended, gm.EndOffset, gm.EndReason, gm.EndTime = true, off, "test", time.Now().UTC()
	}
	if err := catalog.PutJSON(ctx, b, catalog.GenerationKey(g.ID), &gm); err != nil {
		return nil, err
	}
	return out, nil
}

type builtSegment struct {
	*catalog.Segment
	raw []byte
}

func segment(g Generation, cmds []Cmd, db int, start int64) (*builtSegment, int, int64, error) {
	s := &catalog.Segment{Format: catalog.FormatVersion, Generation: g.ID, Start: start, End: start, DBAtStart: db}
	raw := resp.AppendCommandString(nil, "SELECT", strconv.Itoa(db))
	needCP := true
	var lastMs, lastSec, lastFrom int64 = -1, -1, 0
	first, inMulti := true, false
	for _, c := range cmds {
		if c.Offset != s.End {
			return nil, 0, 0, fmt.Errorf("command %q at offset %d, expected %d", c.Args[0], c.Offset, s.End)
		}
		s.End += c.Len()
		if c.Control() {
			needCP = true
			continue
		}
		if tk, ok := catalog.TickOf(c.Args); ok && !inMulti {
			// a time marker: stored as an annotation, as ship does
			raw = catalog.AppendTick(raw, tk.Ms)
			needCP = true
			continue
		}
		switch strings.ToUpper(string(c.Args[0])) {
		case "MULTI":
			inMulti = true
		case "EXEC", "DISCARD":
			inMulti = false
		}
		if sec := c.Ms / 1000; !g.NoTimestamps && sec != lastSec {
			raw = fmt.Appendf(raw, "#TS:%d\r\n", sec)
			lastSec = sec
			needCP = true
		}
		if needCP || c.Ms != lastMs || c.From != lastFrom {
			s.Index = append(s.Index, catalog.Checkpoint{int64(len(raw)), c.Offset, c.Ms, c.From})
			needCP, lastFrom = false, c.From
		}
		if first {
			s.FirstMs, first = c.Ms, false
		}
		s.LastMs, lastMs = c.Ms, c.Ms
		if !strings.EqualFold(string(c.Args[0]), "SELECT") {
			s.Commands++
		}
		raw = resp.AppendCommand(raw, c.Args...)
		if strings.EqualFold(string(c.Args[0]), "SELECT") {
			d, err := strconv.Atoi(string(c.Args[1]))
			if err != nil {
				return nil, 0, 0, err
			}
			db = d
		}
	}
	// A trailing checkpoint when skipped control traffic ends the segment.
	if n := len(s.Index); n > 0 {
		last := s.Index[n-1]
		if needCP || last.Offset()+int64(len(raw))-last.AOFPos() != s.End {
			s.Index = append(s.Index, catalog.Checkpoint{int64(len(raw)), s.End, s.LastMs})
		}
	} else if s.End != s.Start {
		s.Index = append(s.Index, catalog.Checkpoint{int64(len(raw)), s.End, s.LastMs})
	}
	return &builtSegment{Segment: s, raw: raw}, db, s.End, nil
}

func writeSegment(ctx context.Context, b storage.Backend, g Generation, s *builtSegment) error {
	var stored bytes.Buffer
	w, err := pack.NewWriter(&stored, g.Pack)
	if err != nil {
		return err
	}
	if _, err := w.Write(s.raw); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	enc := g.Pack.Recipients != nil
	s.Object = catalog.Object{Key: catalog.SegmentDataKey(g.ID, s.Start, s.End, enc), RawBytes: int64(len(s.raw)),
		StoredBytes: int64(stored.Len()), SHA256: w.Stored.Sum(), Compression: pack.CompressionZstd}
	if enc {
		s.Object.Encryption = pack.EncryptionAge
		s.Object.Recipients = g.Pack.Recipients.Fingerprints
	}
	if _, err := b.Put(ctx, s.Object.Key, bytes.NewReader(stored.Bytes())); err != nil {
		return err
	}
	return catalog.PutJSON(ctx, b, catalog.SegmentKey(g.ID, s.Start, s.End), s.Segment)
}

// Raw returns the AOF bytes Write stores for the commands of one segment
// (for byte-level checks).
func Raw(g Generation, cmds []Cmd, db int, start int64) ([]byte, error) {
	s, _, _, err := segment(g, cmds, db, start)
	if err != nil {
		return nil, err
	}
	return s.raw, nil
}

// Cmds returns the commands of lines (each a command, its words split at
// spaces) as one stream from offset start, the i-th received at
// t0+i*step (unix ms).
func Cmds(start, t0, step int64, lines ...string) []Cmd {
	out := make([]Cmd, 0, len(lines))
	off := start
	for i, l := range lines {
		c := Cmd{Offset: off, Ms: t0 + int64(i)*step}
		for _, w := range strings.Fields(l) {
			c.Args = append(c.Args, []byte(w))
		}
		off += c.Len()
		out = append(out, c)
	}
	return out
}

// EmptyRDB returns an RDB file (version 10) that holds no key.
func EmptyRDB() ([]byte, error) {
	var buf bytes.Buffer
	w, err := rdb.NewWriter(&buf, 10)
	if err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EmptyBase stores an empty RDB as the base snapshot of generation gen
// (sealed with po) and returns its manifest and the RDB's bytes.
func EmptyBase(ctx context.Context, b storage.Backend, gen string, po pack.Options) (*catalog.Snapshot, []byte, error) {
	raw, err := EmptyRDB()
	if err != nil {
		return nil, nil, err
	}
	base, err := snapshot.Store(ctx, bytes.NewReader(raw), snapshot.Options{Backend: b, Method: "ship", Generation: gen, Pack: po})
	if err != nil {
		return nil, nil, err
	}
	return base, raw, nil
}
