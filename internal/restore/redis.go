package restore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"redback/internal/catalog"
	"redback/internal/digest"
	"redback/internal/keysample"
	"redback/internal/pack"
	"redback/internal/rdb"
	"redback/internal/redisurl"
	"redback/internal/resp"
	"redback/internal/respconn"
)

type entryKind uint8

const (
	kRestore entryKind = iota
	kConvert
	kConvertCleanup // replies of a key whose conversion failed locally: read and ignored
)

// entry is one key's commands inside a batch.
type entry struct {
	kind        entryKind
	n           int // replies
	koff, klen  int // key in batch.keys
	rename      int // kConvert: index of the RENAME/RENAMENX reply in this part, -1 if not here
	first, last bool
	rewritten   bool
}

// batch is a run of commands for one db sent on one connection.
type batch struct {
	db       int
	buf      []byte
	big      []byte    // a value written in place after buf, then tail (not copied)
	bigFile  io.Reader // or a value read from a spool file, its payload's end
	bigCRC   uint64    // (footer and CRC-64) computed as it is sent: the CRC of the prefix
	footer   uint16
	tail     []byte
	ents     []entry
	keys     []byte
	selected bool
	written  chan struct{} // closed once big was written
}

func (b *batch) reset(db int) {
	b.db, b.buf, b.big, b.bigFile, b.bigCRC, b.tail, b.ents, b.keys, b.selected, b.written = db, b.buf[:0], nil, nil, 0, nil, b.ents[:0], b.keys[:0], false, nil
	if cap(b.buf) > 4<<20 {
		b.buf = nil
	}
}

func (b *batch) key(e *entry) []byte { return b.keys[e.koff : e.koff+e.klen] }

// worker owns one connection: a writer loop and a reply reader loop.
type worker struct {
	c        *respconn.Conn
	in       chan *batch
	inflight chan *batch
}

// executor is one ToRedis run.
type executor struct {
	// span is the first and the last key read from the source (in its
	// order), for what a DamagedSourceError says was written.
	span    keySpan
	opts    Options
	plan    *Plan
	res     *Result
	free    chan *batch
	workers []*worker
	next    int
	cur     *batch
	curDB   int
	tmpID   string
	tmpN    int64
	nowMs   int64
	conv    converter
	ctl     *respconn.Conn
	ctlMu   sync.Mutex
	// metaDropped counts keys whose module key metadata (Redis 8.6) the
	// target cannot load.
	metaDropped int64
	// sample is the feed's (nil: no verification by sample).
	sample *keysample.Sampler
	// spooled gives the Spool holding the value of a Streamed record (nil:
	// the feed spools none), body the one of the key being written.
	spooled func(*rdb.Record) *Spool
	body    *Spool
}

// ToRedis restores src into the server at u, by replication or with
// RESTORE commands (Options.Method).
//
// By replication (MethodReplicate, or MethodAuto when the target allows
// it): the target, a standalone primary without replicas whose dbs and
// functions are all empty (or, with MethodReplicate and ConflictReplace
// and no filter, any standalone primary: its whole dataset is replaced),
// is told REPLICAOF an address this process listens on (Options.Listen,
// Options.Advertise), with a one-time token as its masterauth, and loads
// the RDB (rewritten when filtered) as in a full sync, checked as it is
// sent; then REPLICAOF NO ONE, its config is put back and its DEBUG
// DIGEST compared with the data's (a *DigestError when it differs). On
// any failure the target is made a primary again with its config as
// before and, when it was empty, emptied; the error says what it holds.
// With MethodAuto, a target that cannot replicate (refuses CONFIG or
// REPLICAOF, cannot reach this process, does not load the RDB version,
// holds keys, ...) is restored with RESTORE commands and Result.Notes
// says why.
//
// With RESTORE commands it refuses a cluster, a replica and (with
// ConflictFail) non-empty target dbs before writing anything. Keys that
// fail are counted and listed in the Result, which is returned together
// with any error; a damaged source gives a *DamagedSourceError.
func ToRedis(ctx context.Context, src Source, u *redisurl.URL, o Options) (*Result, error) {
	if o.Method != MethodRestore {
		opts := o.withDefaults()
		res, done, err := replicate(ctx, src, u, opts)
		if done {
			return res, err
		}
		notes := res.Notes
		res, err = restoreToRedis(ctx, src, u, o)
		res.Notes = append(notes, res.Notes...)
		return res, err
	}
	return restoreToRedis(ctx, src, u, o)
}

// restoreToRedis is ToRedis with RESTORE commands.
func restoreToRedis(ctx context.Context, src Source, u *redisurl.URL, o Options) (res *Result, err error) {
	defer func() { res.Method = "restore" }()
	var rc io.ReadCloser
	defer func() {
		if rc != nil {
			rc.Close()
		}
	}()
	// Opened once the target passed its checks.
	open := func(ctx context.Context, opts Options, tgt Target) (*feed, error) {
		var err error
		if src.Precheck != nil && !opts.NoPrecheck {
			// Prove the stored bytes before the first write to a live
			// server: a damaged source then writes nothing.
			if err := src.Precheck(ctx); err != nil {
				return nil, sourceErr(src, 0, err)
			}
		}
		if rc, err = src.Open(ctx); err != nil {
			return nil, err
		}
		// A big value is streamed into a spool file (never held whole)
		// unless filtered out.
		var sp *Spool
		var plan *Plan
		rd, err := rdb.NewReader(rc, rdb.Options{MaxValueBytes: opts.MaxValueBytes, StreamStrings: true, StreamValues: func(rec *rdb.Record) (*rdb.Visitor, error) {
			if plan != nil && (!plan.Filter.KeepDB(rec.DB) || !plan.Filter.KeepKey(rec.Key)) {
				return nil, nil
			}
			return sp.Start(ctx, rec)
		}})
		if err != nil {
			return nil, sourceErr(src, 0, err)
		}
		sp = NewSpool(rd.Version())
		plan, err = NewPlan(rd.Version(), src.DBs, tgt, opts.Filter, opts.Conflict)
		var ce *ConflictError
		if errors.As(err, &ce) && src.DBs == nil {
			// Which dbs does the source use? Read it once to find out.
			dbs, serr := scanSource(ctx, src, opts.MaxValueBytes)
			if serr != nil {
				return nil, serr
			}
			plan, err = NewPlan(rd.Version(), dbs, tgt, opts.Filter, opts.Conflict)
		}
		if err != nil {
			return nil, err
		}
		next := func(context.Context) (*rdb.Record, error) {
			rec, err := rd.Next()
			if err == io.EOF {
				// Read to the end so a stored object's size and sha256 are checked.
				if _, err := io.Copy(io.Discard, rc); err != nil {
					return nil, err
				}
			}
			return rec, err
		}
		f := &feed{plan: plan, next: next, offset: rd.Offset, source: src.damageLabel(),
			interrupted: "restore interrupted", failed: "restore from " + src.Name, spool: sp, spooled: sp.take}
		if opts.Conflict != ConflictSkip && !opts.Cluster && opts.SampleKeys >= 0 {
			// Skipped keys keep the target's values: nothing to compare.
			f.sample = keysample.New(cmp.Or(opts.SampleKeys, SampleKeys), digest.Score70)
		}
		return f, nil
	}
	return toTarget(ctx, u, o, open)
}

// feed is what ToRedis and FromRecords hand the shared path: the plan for
// the source and its records.
type feed struct {
	plan *Plan
	// next returns the next record, or exactly io.EOF at the end.
	next func(context.Context) (*rdb.Record, error)
	// offset counts the source bytes read (progress, Result.Bytes).
	offset func() int64
	source string // for a DamagedSourceError
	// The beginnings of the messages of a source error: interrupted when
	// ctx ended, else failed.
	interrupted, failed string
	// sample, when set, is offered every key written, and read back from
	// the target once all are (verification without DEBUG).
	sample *keysample.Sampler
	// spooled gives the Spool holding the value of a Streamed record next
	// returned (nil: none); spool is closed at the end.
	spooled func(*rdb.Record) *Spool
	spool   *Spool
}

// toTarget is the path ToRedis and FromRecords share: it checks u, dials
// and probes the target (a cluster or replica is refused there, before
// anything is written), has open make the feed and its plan for what the
// target reported, then writes the records over opts.Parallel pipelined
// connections.
func toTarget(ctx context.Context, u *redisurl.URL, o Options, open func(context.Context, Options, Target) (*feed, error)) (*Result, error) {
	opts := o.withDefaults()
	start := opts.Now()
	res := &Result{maxListed: opts.MaxListed}
	if u.DB != 0 {
		return res, fmt.Errorf("target URL %s names db %d: keys go to their source db; use --map-db FROM:%d instead", u.Redacted(), u.DB, u.DB)
	}
	ctl, err := dial(ctx, u, opts.Timeout)
	if err != nil {
		return res, err
	}
	defer ctl.Close()
	tgt, err := probe(ctl)
	if err != nil {
		return res, err
	}
	if opts.Cluster {
		tgt.Cluster = false // the caller routes every key to the node that serves its slot
	}
	f, err := open(ctx, opts, tgt)
	if err != nil {
		return res, err
	}
	x := &executor{opts: opts, plan: f.plan, res: res, nowMs: start.UnixMilli(), curDB: -1, sample: f.sample, spooled: f.spooled}
	if f.spool != nil {
		defer f.spool.Close()
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	x.tmpID = "redback:restore-tmp:" + hex.EncodeToString(id[:]) + ":"
	x.conv.x = x
	x.ctl = ctl

	g, gctx := errgroup.WithContext(ctx)
	nb := batchesInFlight(opts.Parallel, opts.Cluster) // bounds memory: nb batches of about BatchBytes
	x.free = make(chan *batch, nb)
	for range nb {
		x.free <- &batch{}
	}
	for range opts.Parallel {
		c, err := dial(gctx, u, opts.Timeout)
		if err != nil {
			for _, w := range x.workers {
				w.c.Close()
			}
			return res, err
		}
		w := &worker{c: c, in: make(chan *batch, 1), inflight: make(chan *batch, 2)}
		x.workers = append(x.workers, w)
	}
	for _, w := range x.workers {
		g.Go(func() error { return x.writeLoop(gctx, w) })
		g.Go(func() error { return x.readLoop(gctx, w) })
	}
	srcErr := x.run(gctx, ctl, f)
	for _, w := range x.workers {
		close(w.in)
	}
	werr := g.Wait()
	for _, w := range x.workers {
		w.c.Close()
	}
	res.Bytes = f.offset()
	res.Duration = opts.Now().Sub(start)
	if x.metaDropped > 0 {
		res.note("%d keys carried module key metadata (KEY_META, Redis 8.6) that %s cannot load: restored without it", x.metaDropped, tgt.Address)
	}
	switch {
	case werr != nil:
		return res, fmt.Errorf("%w (%d keys were written before)", werr, res.KeysRestored)
	case srcErr != nil && pack.VerificationFailed(srcErr):
		return res, &DamagedSourceError{Source: f.source, Written: res.KeysRestored, Span: x.span.String(), Err: srcErr}
	case srcErr != nil:
		if ctx.Err() != nil {
			return res, fmt.Errorf("%s: %w (%d keys were written)", f.interrupted, ctx.Err(), res.KeysRestored)
		}
		return res, fmt.Errorf("%s: %w (%d keys were written)", f.failed, srcErr, res.KeysRestored)
	case f.sample != nil && res.KeysFailed == 0:
		// The dbs that received keys were empty unless --conflict replace.
		return res, verifyBySample(ctx, u, f.sample, opts, res, opts.Conflict == ConflictFail, "RESTORE commands, no DEBUG DIGEST compared")
	}
	return res, nil
}

func sourceErr(src Source, written int64, err error) error {
	if pack.VerificationFailed(err) {
		return &DamagedSourceError{Source: src.damageLabel(), Written: written, Err: err}
	}
	return fmt.Errorf("read %s: %w", src.Name, err)
}

func scanSource(ctx context.Context, src Source, maxValue int64) ([]int, error) {
	rc, err := src.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	dbs, err := ScanDBs(rc, maxValue)
	if err != nil {
		return nil, sourceErr(src, 0, err)
	}
	return dbs, nil
}

// run reads the records and feeds the workers. Its error is about the
// source or the context; worker errors surface from the errgroup.
func (x *executor) run(ctx context.Context, ctl *respconn.Conn, f *feed) error {
	var lastOff, keys int64
	progress := func(force bool) {
		if x.opts.Progress == nil || (!force && keys < 512) {
			return
		}
		off := f.offset()
		x.opts.Progress(off-lastOff, keys)
		lastOff, keys = off, 0
	}
	defer progress(true)
	for {
		rec, err := f.next(ctx)
		if err == io.EOF {
			return x.flush(ctx)
		}
		if err != nil {
			if ferr := x.flush(ctx); ferr != nil && ctx.Err() != nil {
				return ferr
			}
			return err
		}
		switch rec.Kind {
		case rdb.RecordFunction:
			if err := x.loadFunction(ctl, rec.FunctionCode); err != nil {
				return err
			}
		case rdb.RecordModuleAux:
			x.res.note("module aux data of %s is not restored (RESTORE carries keys only)", rec.Module)
		case rdb.RecordKey:
			keys++
			x.span.see(rec.DB, rec.Key)
			if err := x.key(ctx, rec); err != nil {
				return err
			}
			progress(false)
		}
	}
}

// remove deletes key in db over the control connection.
func (x *executor) remove(db int, key []byte) error {
	x.ctlMu.Lock()
	defer x.ctlMu.Unlock()
	c := x.ctl
	_ = c.SetDeadline(time.Now().Add(x.opts.Timeout))
	if _, err := c.Do("SELECT", strconv.Itoa(db)); err != nil {
		return &respconn.ServerError{Role: respconn.RoleTarget, Addr: c.Addr(), Msg: "SELECT", Err: err}
	}
	if _, err := c.Do("DEL", string(key)); err != nil {
		return &respconn.ServerError{Role: respconn.RoleTarget, Addr: c.Addr(), Msg: "DEL of a partly converted key", Err: err}
	}
	return nil
}

func (x *executor) loadFunction(ctl *respconn.Conn, code []byte) error {
	x.ctlMu.Lock()
	defer x.ctlMu.Unlock()
	args := []string{"FUNCTION", "LOAD"}
	if x.opts.Conflict == ConflictReplace {
		args = append(args, "REPLACE")
	}
	args = append(args, string(code))
	_ = ctl.SetDeadline(time.Now().Add(x.opts.Timeout))
	_, err := ctl.Do(args...)
	name := catalog.LibraryName(code)
	var re resp.Error
	switch {
	case err == nil:
		x.res.FunctionsLoaded++
	case errors.As(err, &re):
		if f := fatalReply(ctl.Addr(), re); f != nil {
			return f
		}
		if x.opts.Conflict == ConflictSkip && re.Code() == "ERR" && strings.Contains(strings.ToLower(string(re)), "already exists") {
			x.res.FunctionsSkipped++
			return nil
		}
		if x.opts.Conflict == ConflictFail && strings.Contains(strings.ToLower(string(re)), "already exists") {
			return &ConflictError{Target: ctl.Addr(), Note: fmt.Sprintf("function library %q already exists", name)}
		}
		x.res.fail(-1, []byte("function library "+name), string(re))
	default:
		return &respconn.ServerError{Role: respconn.RoleTarget, Addr: ctl.Addr(), Msg: "FUNCTION LOAD " + name, Err: err}
	}
	return nil
}

// redirected reports a cluster reply that says "not here, not now": the
// key goes to another node or must be sent again.
func redirected(re resp.Error) bool {
	switch re.Code() {
	case "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN":
		return true
	}
	return false
}

// key handles one key record.
func (x *executor) key(ctx context.Context, rec *rdb.Record) error {
	payloadLen := int64(len(rec.Value)) + 11
	var body *io.SectionReader
	x.body = nil
	if rec.Streamed && x.spooled != nil {
		if x.body = x.spooled(rec); x.body != nil {
			sp := x.body
			defer func() {
				// Not released once ctx ended: the value may still be on
				// its way out, and the next one must not be spooled over it.
				if ctx.Err() == nil {
					sp.Release()
				}
			}()
			var err error
			if body, err = x.body.end(); err != nil {
				return err
			}
			payloadLen = body.Size() + 11
		}
	}
	act := x.plan.Decide(rec.DB, rec.Key, rec.Type, rec.Expire, payloadLen, x.nowMs)
	switch act {
	case ActionFiltered:
		x.res.KeysFiltered++
		return nil
	case ActionExpired:
		x.res.KeysExpired++
		return nil
	}
	if rec.Streamed && body == nil {
		return fmt.Errorf("key %q: its value was streamed, and not into this restore's spool", rec.Key)
	}
	switch act {
	case ActionConvert:
		if err := x.flush(ctx); err != nil {
			return err
		}
		// Counted, not sampled: a conversion may drop what the target
		// cannot hold (and says so).
		x.sample.Count(x.plan.Filter.TargetDB(rec.DB), rec)
		return x.conv.convert(ctx, rec, x.plan.Filter.TargetDB(rec.DB))
	}
	db := x.plan.Filter.TargetDB(rec.DB)
	if err := offerSample(x.sample, db, rec); err != nil {
		return err
	}
	footer := x.plan.Footer
	if act == ActionRewriteFooter {
		footer = x.plan.RewriteFooter
	}
	meta := keptMeta(rec, x.plan.Target)
	if len(meta) < len(rec.Meta) {
		x.metaDropped++
	}
	if len(meta) > 0 {
		payloadLen += int64(len(meta)) + 1
	}
	if x.cur != nil && (x.curDB != db || len(x.cur.ents) >= x.opts.BatchKeys || len(x.cur.buf)+int(payloadLen) > x.opts.BatchBytes) {
		if err := x.flush(ctx); err != nil {
			return err
		}
	}
	big := payloadLen > int64(x.opts.BatchBytes) || body != nil
	if x.cur == nil {
		b, err := x.getBatch(ctx, db)
		if err != nil {
			return err
		}
		x.cur, x.curDB = b, db
	}
	b := x.cur
	replace := x.opts.Conflict == ConflictReplace
	b.buf = appendRestoreHead(b.buf, rec, payloadLen, replace)
	pre := len(b.buf)
	b.buf = dumpPrefix(b.buf, meta, rec.Type)
	crc := rdb.CRC64(0, b.buf[pre:])
	tail := b.buf
	switch {
	case body != nil:
		// The footer and CRC-64 go out after the file's bytes (writeLoop).
		b.bigFile, b.bigCRC, b.footer = body, crc, footer
		tail = make([]byte, 0, 64)
	case big:
		b.big = rec.Value
		tail = appendPayloadEnd(make([]byte, 0, 64), rdb.CRC64(crc, rec.Value), footer)
	default:
		tail = append(tail, rec.Value...)
		tail = appendPayloadEnd(tail, rdb.CRC64(crc, rec.Value), footer)
	}
	tail = appendRestoreOptions(tail, rec, replace)
	if big {
		b.tail = tail
	} else {
		b.buf = tail
	}
	koff := len(b.keys)
	b.keys = append(b.keys, rec.Key...)
	b.ents = append(b.ents, entry{kind: kRestore, n: 1, koff: koff, klen: len(rec.Key), rename: -1, rewritten: act == ActionRewriteFooter})
	if big {
		// The value is rec.Value, valid until the next record, or in the
		// spool file, which the next streamed value overwrites: wait until
		// it is on the wire.
		b.written = make(chan struct{})
		w := x.next
		x.next = (x.next + 1) % len(x.workers)
		x.cur = nil
		if err := x.send(ctx, w, b); err != nil {
			return err
		}
		select {
		case <-b.written:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// batchesInFlight is how many batches one restore over parallel
// connections keeps (filled, sent, awaiting replies): fewer for one
// pipeline of several, one per primary of a cluster.
func batchesInFlight(parallel int, cluster bool) int {
	if cluster {
		return parallel*2 + 2
	}
	return parallel*4 + 2
}

// BatchMemory is the memory of the batches of commands a restore over
// parallel connections keeps in flight with the default batch size (a
// cluster's primaries share it).
func BatchMemory(parallel int) int64 {
	return int64(batchesInFlight(max(parallel, 1), false)) * DefaultBatchBytes
}

// appendRestoreHead appends a RESTORE command for rec up to its payload
// (of payloadLen bytes): the array header, RESTORE, the key, the TTL (the
// absolute expiry, or 0) and the payload's bulk-string header. The
// payload and appendRestoreOptions follow.
func appendRestoreHead(dst []byte, rec *rdb.Record, payloadLen int64, replace bool) []byte {
	ttl := max(rec.Expire, 0)
	n := 4
	if ttl > 0 {
		n++
	}
	if rec.Idle >= 0 || rec.Freq >= 0 {
		n += 2
	}
	if replace {
		n++
	}
	dst = resp.AppendArrayHeader(dst, n)
	dst = resp.AppendBulkString(dst, "RESTORE")
	dst = resp.AppendBulk(dst, rec.Key)
	dst = appendBulkInt(dst, ttl)
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, payloadLen, 10)
	return append(dst, '\r', '\n')
}

// appendPayloadEnd appends the end of a DUMP payload whose bytes so far
// have the CRC-64 crc: the footer (the payload's RDB version), the CRC-64
// with it, and the bulk string's CRLF.
func appendPayloadEnd(dst []byte, crc uint64, footer uint16) []byte {
	var ft [2]byte
	binary.LittleEndian.PutUint16(ft[:], footer)
	dst = append(dst, ft[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, rdb.CRC64(crc, ft[:]))
	return append(dst, '\r', '\n')
}

// appendRestoreOptions appends a RESTORE command's arguments after the
// payload: ABSTTL when rec expires, IDLETIME or FREQ when the RDB had
// them, REPLACE when replace (RestoreArgs for go-redis says the same).
func appendRestoreOptions(dst []byte, rec *rdb.Record, replace bool) []byte {
	if rec.Expire > 0 {
		dst = resp.AppendBulkString(dst, "ABSTTL")
	}
	if rec.Idle >= 0 {
		dst = resp.AppendBulkString(dst, "IDLETIME")
		dst = appendBulkInt(dst, rec.Idle)
	} else if rec.Freq >= 0 {
		dst = resp.AppendBulkString(dst, "FREQ")
		dst = appendBulkInt(dst, int64(rec.Freq))
	}
	if replace {
		dst = resp.AppendBulkString(dst, "REPLACE")
	}
	return dst
}

// keptMeta is rec's module key metadata (Redis 8.6) as the target gets
// it: only 8.6 and later load it.
func keptMeta(rec *rdb.Record, tgt Target) []byte {
	if !tgt.KeyMeta() {
		return nil
	}
	return rec.Meta
}

// dumpPrefix appends what a DUMP payload holds before the value: the
// KEY_META opcode and meta when there is any, then t's type byte.
func dumpPrefix(dst, meta []byte, t rdb.Type) []byte {
	if len(meta) > 0 {
		dst = append(dst, rdb.OpKeyMeta)
		dst = append(dst, meta...)
	}
	return append(dst, t.Wire())
}

func appendBulkInt(buf []byte, n int64) []byte {
	var tmp [20]byte
	return resp.AppendBulk(buf, strconv.AppendInt(tmp[:0], n, 10))
}

func (x *executor) getBatch(ctx context.Context, db int) (*batch, error) {
	select {
	case b := <-x.free:
		b.reset(db)
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (x *executor) send(ctx context.Context, w int, b *batch) error {
	select {
	case x.workers[w].in <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush sends the current batch to the next connection.
func (x *executor) flush(ctx context.Context) error {
	b := x.cur
	if b == nil {
		return nil
	}
	x.cur = nil
	if len(b.ents) == 0 {
		x.free <- b
		return nil
	}
	w := x.next
	x.next = (x.next + 1) % len(x.workers)
	return x.send(ctx, w, b)
}

func (x *executor) writeLoop(ctx context.Context, w *worker) error {
	defer close(w.inflight)
	c := w.c
	bw := c.Writer()
	for b := range w.in {
		if ctx.Err() != nil {
			if b.written != nil {
				close(b.written)
			}
			continue // drain so the producer never blocks
		}
		_ = c.SetWriteDeadline(time.Now().Add(x.opts.Timeout))
		var err error
		if b.db != c.DB {
			_, err = bw.Write(resp.AppendCommandString(nil, "SELECT", strconv.Itoa(b.db)))
			c.DB, b.selected = b.db, true
		}
		if err == nil {
			_, err = bw.Write(b.buf)
		}
		if err == nil && b.bigFile != nil {
			err = sendSpooled(bw, b.bigFile, b.bigCRC, b.footer)
			if err == nil {
				_, err = bw.Write(b.tail)
			}
		} else if err == nil && b.big != nil {
			if _, err = bw.Write(b.big); err == nil {
				_, err = bw.Write(b.tail)
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		if b.written != nil {
			b.big, b.bigFile = nil, nil
			close(b.written)
		}
		if err != nil {
			return &respconn.ServerError{Role: respconn.RoleTarget, Addr: c.Addr(), Msg: "connection lost while sending", Err: err}
		}
		select {
		case w.inflight <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (x *executor) readLoop(ctx context.Context, w *worker) error {
	c := w.c
	rd := c.Reader()
	var convErr error
	var convBusy, renamed bool
	var okN, rewrittenN int64 // counted per batch, then added under the lock
	commit := func() {
		if okN > 0 {
			x.res.mu.Lock()
			x.res.KeysRestored += okN
			x.res.KeysRewritten += rewrittenN
			x.res.mu.Unlock()
			okN, rewrittenN = 0, 0
		}
	}
	defer commit()
	for b := range w.inflight {
		_ = c.SetReadDeadline(time.Now().Add(x.opts.Timeout))
		if b.selected {
			if _, err := rd.ReadValue(); err != nil {
				return &respconn.ServerError{Role: respconn.RoleTarget, Addr: c.Addr(), Msg: fmt.Sprintf("SELECT %d", b.db), Err: err}
			}
		}
		for i := range b.ents {
			e := &b.ents[i]
			if e.kind == kConvert && e.first {
				convErr, convBusy, renamed = nil, false, false
			}
			if e.kind == kRestore && c.ReadOK() {
				okN++
				if e.rewritten {
					rewrittenN++
				}
				continue
			}
			for j := range e.n {
				v, err := rd.ReadValue()
				var re resp.Error
				if errors.As(err, &re) && e.kind == kRestore && x.opts.Cluster && redirected(re) {
					x.res.mu.Lock()
					x.res.Redirected = append(x.res.Redirected, string(b.key(e)))
					x.res.mu.Unlock()
					continue
				}
				if errors.As(err, &re) {
					if f := fatalReply(c.Addr(), re); f != nil {
						if e.kind != kConvertCleanup {
							// counted: the summary never says "0 failed" while failing
							x.res.fail(b.db, b.key(e), string(re))
						}
						return f
					}
				} else if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					return &respconn.ServerError{Role: respconn.RoleTarget, Addr: c.Addr(), Msg: "connection lost while reading replies", Err: err}
				}
				switch e.kind {
				case kRestore:
					switch {
					case err == nil:
						x.res.add(&x.res.KeysRestored, 1)
						if e.rewritten {
							x.res.add(&x.res.KeysRewritten, 1)
						}
					case re.Code() == "BUSYKEY" && x.opts.Conflict == ConflictSkip:
						x.res.add(&x.res.KeysSkipped, 1)
					case re.Code() == "BUSYKEY":
						x.res.fail(b.db, b.key(e), "key exists on the target (written while the restore ran?)")
					default:
						x.res.fail(b.db, b.key(e), string(re))
					}
				case kConvert:
					if err != nil && convErr == nil && j != e.rename {
						convErr = err
					}
					if j == e.rename {
						switch {
						case err != nil:
							if convErr == nil {
								convErr = err
							}
						case v.Kind == resp.KindInteger && v.Int == 0:
							convBusy = true
						default:
							renamed = true
						}
					}
				}
			}
			if e.kind == kConvert && e.last {
				switch {
				case convErr != nil:
					reason := "converted to commands: " + convErr.Error()
					if renamed {
						// A partial value reached the real key: remove it.
						if err := x.remove(b.db, b.key(e)); err != nil {
							return err
						}
						reason += " (the partly built key was deleted)"
					}
					x.res.fail(b.db, b.key(e), reason)
				case convBusy && x.opts.Conflict == ConflictSkip:
					x.res.add(&x.res.KeysSkipped, 1)
				case convBusy:
					x.res.fail(b.db, b.key(e), "key exists on the target (written while the restore ran?)")
				default:
					x.res.add(&x.res.KeysRestored, 1)
					x.res.add(&x.res.KeysConverted, 1)
				}
			}
		}
		commit()
		select {
		case x.free <- b:
		default:
		}
	}
	return nil
}
