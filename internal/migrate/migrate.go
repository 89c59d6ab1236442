package migrate

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"redback/internal/rdb"
	"redback/internal/redisurl"
	"redback/internal/resp"
	"redback/internal/respconn"
	"redback/internal/restore"
)

// Defaults of Options.
const (
	DefaultParallel  = 2    // source connections DUMPing (and target connections RESTOREing)
	DefaultScanCount = 1000 // SCAN ... COUNT
	DefaultBatchKeys = 1000 // keys per MULTI/DUMP.../EXEC round trip
	DefaultTimeout   = 2 * time.Minute
	// MaxScanCalls bounds the SCAN calls of one db (a cursor that never
	// returns to 0 is a server bug; stop rather than loop forever).
	MaxScanCalls = 1 << 32
)

// Options tune a migration. The zero value copies every key with
// restore.ConflictFail and the defaults above.
type Options struct {
	Filter    restore.Filter   // --match, --db, --map-db: the same as restore's
	Conflict  restore.Conflict // keys that already exist on the target
	Parallel  int              // connections to each server
	ScanCount int
	BatchKeys int
	Timeout   time.Duration // per connection setup and per round trip
	// Method reads the source: MethodDump (the default) or MethodSync.
	Method string
	// Progress, when set, receives increments of value bytes and keys
	// handled. It is called from one goroutine.
	Progress func(bytes, keys int64)
	// Now is the clock deciding which keys already expired (time.Now if nil).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.ScanCount <= 0 {
		o.ScanCount = DefaultScanCount
	}
	if o.BatchKeys <= 0 {
		o.BatchKeys = DefaultBatchKeys
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Method == "" {
		o.Method = MethodDump
	}
	return o
}

// Result counts what a migration did: Restore as restore.ToRedis reports
// it (restored, skipped, expired, converted, failed...), plus what only a
// live source has.
type Result struct {
	Restore      *restore.Result
	KeysScanned  int64 // distinct keys SCAN returned (after --match)
	KeysVanished int64 // deleted or expired between SCAN and DUMP
	Duplicates   int64 // keys SCAN returned twice, copied once
	SourceDBs    []int // source dbs read
	// SourceChanged, with --method dump, says how the source's INFO
	// differed after the copy from before it (writes, expiries, a save):
	// the copy is then not one point in time. "" when nothing differed
	// (or the target is the source server itself).
	SourceChanged string
	Source        string
	Target        string
}

// recBatch is one round trip of keys and, once fetched, their records.
type recBatch struct {
	db   int
	keys []byte
	koff []int // end offsets of the keys in keys
	vals []byte
	recs []rdb.Record
}

func (b *recBatch) reset(db int) {
	b.db, b.keys, b.koff, b.vals, b.recs = db, b.keys[:0], b.koff[:0], b.vals[:0], b.recs[:0]
}

func (b *recBatch) key(i int) []byte {
	s := 0
	if i > 0 {
		s = b.koff[i-1]
	}
	return b.keys[s:b.koff[i]]
}

// Run copies the keys of from selected by o.Filter into to.
func Run(ctx context.Context, from, to *redisurl.URL, o Options) (*Result, error) {
	opts := o.withDefaults()
	res := &Result{Source: from.Redacted(), Target: to.Redacted(), Restore: &restore.Result{}}
	if opts.Method != MethodDump && opts.Method != MethodSync {
		return res, fmt.Errorf("unknown method %q: want %s or %s", opts.Method, MethodDump, MethodSync)
	}
	if from.DB != 0 {
		return res, fmt.Errorf("source URL %s names db %d: select source dbs with --db %d instead", from.Redacted(), from.DB, from.DB)
	}
	if from.Network() == to.Network() && from.Addr == to.Addr {
		same := true
		for _, d := range opts.Filter.DBs {
			if opts.Filter.TargetDB(d) != d {
				same = false
			}
		}
		if same && len(opts.Filter.MapDB) == 0 {
			return res, fmt.Errorf("source and target are the same server (%s): give a different target, or move keys between dbs with --db N --map-db N:M", from.Redacted())
		}
	}
	ctl, err := dial(ctx, from, opts.Timeout)
	if err != nil {
		return res, err
	}
	defer ctl.Close()
	_ = ctl.SetDeadline(time.Now().Add(opts.Timeout))
	in, err := ctl.info()
	if err != nil {
		return res, err
	}
	if in.Cluster {
		return res, &respconn.ServerError{Role: respconn.RoleSource, Addr: ctl.Addr(), Msg: "the source runs in cluster mode: SCAN sees only this node's keys; migrate from each node (or restore from a snapshot) instead"}
	}
	version, err := restore.DumpVersion(in.Version, in.Valkey)
	if err != nil {
		return res, &respconn.ServerError{Role: respconn.RoleSource, Addr: ctl.Addr(), Msg: "INFO server", Err: err}
	}
	major, _ := strconv.Atoi(strings.SplitN(in.Version, ".", 2)[0])
	for db, n := range in.Keys {
		if n > 0 && opts.Filter.KeepDB(db) {
			res.SourceDBs = append(res.SourceDBs, db)
		}
	}
	sort.Ints(res.SourceDBs)
	if opts.Method == MethodSync {
		_ = ctl.SetDeadline(time.Time{})
		return res, runSync(ctx, from, to, opts, res, res.SourceDBs)
	}
	var funcs [][]byte
	if major >= 7 {
		funcs, err = ctl.functions()
		if err != nil {
			return res, err
		}
	}
	_ = ctl.SetDeadline(time.Time{})

	conns := make([]*conn, 0, opts.Parallel)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range opts.Parallel {
		c, err := dial(ctx, from, opts.Timeout)
		if err != nil {
			return res, err
		}
		conns = append(conns, c)
	}

	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, pctx := errgroup.WithContext(gctx)
	nb := 2*opts.Parallel + 2
	pool := make(chan *recBatch, nb)
	for range nb {
		pool <- &recBatch{}
	}
	out := make(chan *recBatch, nb)
	p := &producer{opts: opts, ctl: ctl, conns: conns, pool: pool, out: out, pexpiretime: major >= 7, res: res}
	g.Go(func() error {
		defer close(out)
		for _, db := range res.SourceDBs {
			if err := p.db(pctx, db); err != nil {
				return err
			}
		}
		return nil
	})

	var cur *recBatch
	next := 0
	fn := 0
	var frec rdb.Record
	recs := restore.Records{
		Name:    "server " + from.Redacted(),
		Version: version,
		DBs:     res.SourceDBs,
		Next: func(ctx context.Context) (*rdb.Record, error) {
			if fn < len(funcs) {
				frec = rdb.Record{Kind: rdb.RecordFunction, FunctionCode: funcs[fn]}
				fn++
				return &frec, nil
			}
			for cur == nil || next >= len(cur.recs) {
				if cur != nil {
					pool <- cur
					cur = nil
				}
				select {
				case b, ok := <-out:
					if !ok {
						if err := g.Wait(); err != nil {
							return nil, err
						}
						return nil, io.EOF
					}
					cur, next = b, 0
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			next++
			return &cur.recs[next-1], nil
		},
	}
	ro := restore.Options{Filter: opts.Filter, Conflict: opts.Conflict, Parallel: opts.Parallel, Timeout: opts.Timeout, Progress: opts.Progress, Now: opts.Now}
	rres, err := restore.FromRecords(ctx, recs, to, ro)
	cancel()
	perr := g.Wait()
	res.Restore = rres
	if err == nil && !(from.Network() == to.Network() && from.Addr == to.Addr) {
		_ = ctl.SetDeadline(time.Now().Add(opts.Timeout))
		if after, ierr := ctl.info(); ierr == nil {
			res.SourceChanged = in.Changed(after)
		}
	}
	res.KeysScanned = p.scanned.Load()
	res.KeysVanished = p.vanished.Load()
	res.Duplicates = p.dups.Load()
	if err == nil && perr != nil && !errors.Is(perr, context.Canceled) {
		err = perr
	}
	return res, err
}

// producer reads the source: SCAN on ctl, DUMP on conns.
type producer struct {
	opts        Options
	ctl         *conn
	conns       []*conn
	pool, out   chan *recBatch
	pexpiretime bool
	res         *Result

	scanned, vanished, dups atomic.Int64
}

// db copies one source db: a SCAN goroutine feeding the DUMP connections.
func (p *producer) db(ctx context.Context, db int) error {
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan *recBatch, len(p.conns))
	g.Go(func() error {
		defer close(work)
		return p.scan(gctx, db, work)
	})
	for _, c := range p.conns {
		g.Go(func() error {
			for b := range work {
				if err := p.fetch(c, b); err != nil {
					if gctx.Err() != nil {
						return gctx.Err()
					}
					return err
				}
				select {
				case p.out <- b:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	}
	return g.Wait()
}

func (p *producer) scan(ctx context.Context, db int, work chan<- *recBatch) error {
	c := p.ctl
	if _, err := c.Do("SELECT", strconv.Itoa(db)); err != nil {
		return &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: fmt.Sprintf("SELECT %d", db), Err: err}
	}
	seen := newHashSet()
	seed := maphash.MakeSeed()
	var pattern string
	if m := p.opts.Filter.Match; len(m) == 1 {
		pattern = m[0]
	}
	count := strconv.Itoa(p.opts.ScanCount)
	var b *recBatch
	send := func() error {
		if b == nil || len(b.koff) == 0 {
			return nil
		}
		select {
		case work <- b:
			b = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cursor := "0"
	var cmd []byte
	for calls := int64(0); ; calls++ {
		if calls >= MaxScanCalls {
			return &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: fmt.Sprintf("SCAN of db %d did not finish after %d calls", db, calls)}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		args := []string{"SCAN", cursor, "COUNT", count}
		if pattern != "" {
			args = append(args, "MATCH", pattern)
		}
		cmd = resp.AppendCommandString(cmd[:0], args...)
		_ = c.SetDeadline(time.Now().Add(p.opts.Timeout))
		if _, err := c.Writer().Write(cmd); err != nil {
			return &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: "SCAN", Err: err}
		}
		if err := c.Writer().Flush(); err != nil {
			return &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: "SCAN", Err: err}
		}
		n, err := c.header('*')
		if err == nil && n != 2 {
			err = fmt.Errorf("SCAN reply has %d elements", n)
		}
		var cur []byte
		if err == nil {
			cur, _, err = c.bulkInto(nil, 64)
		}
		var k int64
		if err == nil {
			k, err = c.header('*')
		}
		if err != nil {
			return &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: "SCAN", Err: err}
		}
		for range k {
			if b == nil {
				select {
				case b = <-p.pool:
					b.reset(db)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			start := len(b.keys)
			var null bool
			b.keys, null, err = c.bulkInto(b.keys, 512<<20)
			if err != nil || null {
				return &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: "SCAN", Err: errors.Join(err, errors.New("bad key in reply"))}
			}
			key := b.keys[start:]
			if len(p.opts.Filter.Match) > 1 && !p.opts.Filter.KeepKey(key) {
				b.keys = b.keys[:start]
				continue
			}
			if !seen.add(maphash.Bytes(seed, key)) {
				p.dups.Add(1)
				b.keys = b.keys[:start]
				continue
			}
			p.scanned.Add(1)
			b.koff = append(b.koff, len(b.keys))
			if len(b.koff) >= p.opts.BatchKeys {
				if err := send(); err != nil {
					return err
				}
			}
		}
		cursor = string(cur)
		if cursor == "0" {
			break
		}
	}
	_ = c.SetDeadline(time.Time{})
	if err := send(); err != nil {
		return err
	}
	if b != nil {
		p.pool <- b
	}
	return nil
}

// fetch reads the values and expire times of b's keys in one transaction.
func (p *producer) fetch(c *conn, b *recBatch) error {
	n := len(b.koff)
	ttlCmd := "PEXPIRETIME"
	if !p.pexpiretime {
		ttlCmd = "PTTL"
	}
	buf := b.vals[:0]
	selected := false
	if c.DB != b.db {
		buf = resp.AppendCommandString(buf, "SELECT", strconv.Itoa(b.db))
		c.DB, selected = b.db, true
	}
	buf = resp.AppendCommandString(buf, "MULTI")
	for i := range n {
		k := b.key(i)
		buf = resp.AppendArrayHeader(buf, 2)
		buf = resp.AppendBulkString(buf, "DUMP")
		buf = resp.AppendBulk(buf, k)
		buf = resp.AppendArrayHeader(buf, 2)
		buf = resp.AppendBulkString(buf, ttlCmd)
		buf = resp.AppendBulk(buf, k)
	}
	buf = resp.AppendCommandString(buf, "EXEC")
	_ = c.SetDeadline(time.Now().Add(p.opts.Timeout))
	t0 := p.opts.Now().UnixMilli()
	if _, err := c.Writer().Write(buf); err != nil {
		return &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: "connection lost while sending", Err: err}
	}
	if err := c.Writer().Flush(); err != nil {
		return &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: "connection lost while sending", Err: err}
	}
	fail := func(what string, err error) error {
		c.DB = -1
		return &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: what, Err: err}
	}
	if selected {
		if err := c.expectStatus("OK"); err != nil {
			return fail(fmt.Sprintf("SELECT %d", b.db), err)
		}
	}
	if err := c.expectStatus("OK"); err != nil {
		return fail("MULTI", err)
	}
	for range 2 * n {
		if err := c.expectStatus("QUEUED"); err != nil {
			return fail("DUMP/"+ttlCmd+" (the user needs both commands)", err)
		}
	}
	m, err := c.header('*')
	if err == nil && m != int64(2*n) {
		err = fmt.Errorf("EXEC returned %d replies for %d commands", m, 2*n)
	}
	if err != nil {
		return fail("EXEC", err)
	}
	vals := buf[:0]
	type span struct{ s, e int }
	spans := make([]span, n) // small: n <= BatchKeys
	exps := make([]int64, n)
	for i := range n {
		s := len(vals)
		var null bool
		vals, null, err = c.bulkInto(vals, 1<<40)
		if err != nil {
			return fail("DUMP", err)
		}
		if null {
			spans[i] = span{-1, -1}
		} else {
			spans[i] = span{s, len(vals)}
		}
		e, err := c.header(':')
		if err != nil {
			return fail(ttlCmd, err)
		}
		exps[i] = e
	}
	_ = c.SetDeadline(time.Time{})
	b.vals = vals
	b.recs = b.recs[:0]
	for i := range n {
		sp := spans[i]
		e := exps[i]
		if sp.s < 0 || e == -2 {
			p.vanished.Add(1)
			continue
		}
		payload := vals[sp.s:sp.e]
		if len(payload) < 11 {
			return &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: fmt.Sprintf("DUMP of db %d key %q returned %d bytes (not a payload)", b.db, b.key(i), len(payload))}
		}
		expire := int64(-1)
		switch {
		case e >= 0 && p.pexpiretime:
			expire = e
		case e >= 0:
			expire = t0 + e
		}
		typ, meta, raw, _ := rdb.SplitPayload(payload)
		b.recs = append(b.recs, rdb.Record{
			Kind: rdb.RecordKey, DB: b.db, Key: b.key(i), Type: typ, Meta: meta,
			Value: raw, Expire: expire, Idle: -1, Freq: -1,
		})
	}
	return nil
}

// functions returns the code of every function library on the source.
func (c *conn) functions() ([][]byte, error) {
	v, err := c.Do("FUNCTION", "LIST", "WITHCODE")
	if err != nil {
		var re resp.Error
		if errors.As(err, &re) {
			return nil, nil // renamed or forbidden: no libraries to copy
		}
		return nil, &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: "FUNCTION LIST", Err: err}
	}
	var out [][]byte
	for _, lib := range v.Array {
		a := lib.Array
		for i := 0; i+1 < len(a); i += 2 {
			if a[i].Text() == "library_code" {
				out = append(out, append([]byte(nil), a[i+1].Str...))
			}
		}
	}
	return out, nil
}

// hashSet is an open-addressing set of non-zero 64-bit hashes.
type hashSet struct {
	slots []uint64
	n     int
	zero  bool
}

func newHashSet() *hashSet { return &hashSet{slots: make([]uint64, 1024)} }

// add inserts h and reports whether it was new.
func (s *hashSet) add(h uint64) bool {
	if h == 0 {
		if s.zero {
			return false
		}
		s.zero = true
		return true
	}
	if 2*(s.n+1) > len(s.slots) {
		old := s.slots
		s.slots = make([]uint64, 2*len(old))
		s.n = 0
		for _, v := range old {
			if v != 0 {
				s.insert(v)
			}
		}
	}
	return s.insert(h)
}

func (s *hashSet) insert(h uint64) bool {
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return false
		case 0:
			s.slots[i] = h
			s.n++
			return true
		}
	}
}
