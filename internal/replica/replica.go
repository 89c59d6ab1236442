package replica

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/redisurl"
	"redback/internal/resp"
)

// Defaults for Config fields left at zero.
const (
	DefaultMaxCommandBytes = 1 << 30 // Redis' client-query-buffer-limit
	DefaultAckInterval     = time.Second
	DefaultIOTimeout       = 60 * time.Second // Redis' repl-timeout
)

// Config tunes a replica connection. The zero value is usable.
type Config struct {
	// ListeningPort is announced with REPLCONF listening-port; it shows in
	// the primary's INFO replication. 0 (the default) announces no usable
	// port, and that keeps the link out of Sentinel's failovers: sentinels
	// learn replicas from the primary's INFO replication and treat port 0
	// as an invalid address, so they never connect to such a replica,
	// never reconfigure it and never promote it (see package sentinel).
	ListeningPort int
	// RDBOnly asks the primary (6.2+) to send the RDB and then close the
	// link, without a command stream. Older servers reject it; the Conn
	// then goes on and RDBOnly() reports false.
	RDBOnly bool
	// MaxCommandBytes bounds the memory of one command of the stream.
	MaxCommandBytes int64
	// AckInterval is the REPLCONF ACK period.
	AckInterval time.Duration
	// IOTimeout is the longest wait for a byte from the primary (it sends
	// keepalives every second while preparing a sync and pings every 10 s
	// while streaming) and the longest a write may block.
	IOTimeout time.Duration
	// Logger receives notes such as a rejected rdb-only request. Nil
	// discards.
	Logger *slog.Logger
	// SharedArgs makes Next return arguments cut from one buffer the Conn
	// reuses, valid only until the next call, instead of fresh slices:
	// for a caller that copies each command (a stream's every byte is
	// then not garbage once).
	SharedArgs bool
}

func (c Config) withDefaults() Config {
	if c.MaxCommandBytes <= 0 {
		c.MaxCommandBytes = DefaultMaxCommandBytes
	}
	if c.AckInterval <= 0 {
		c.AckInterval = DefaultAckInterval
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = DefaultIOTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Position is a point in a primary's replication history: Offset is the
// last byte processed, in the numbering of master_repl_offset. The zero
// Position means "no history" and asks for a full sync.
type Position struct {
	ReplID string
	Offset int64
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p == Position{} }

func (p Position) String() string { return p.ReplID + ":" + strconv.FormatInt(p.Offset, 10) }

// Sentinel errors callers branch on (with errors.Is).
var (
	// ErrReplicationRefused: the server does not let this client replicate
	// (PSYNC renamed or disabled, as on managed services, or an ACL without
	// the permission). Replicating will not work; take the snapshot another
	// way (redback's --method bgsave).
	ErrReplicationRefused = errors.New("replication refused")
	// ErrAuth: the server rejected the credentials or requires some.
	ErrAuth = errors.New("authentication failed")
	// ErrSyncAborted: the primary gave up producing the snapshot
	// ("-ERR BGSAVE failed, replication can't continue").
	ErrSyncAborted = errors.New("primary aborted the full sync")
)

// RetryableError is a temporary refusal to sync (-LOADING, -NOMASTERLINK,
// -BUSY): retry later with backoff.
type RetryableError struct {
	Reply string // the server's error text
}

func (e *RetryableError) Error() string {
	return "primary is not ready to sync, retry later: " + e.Reply
}

// RefusedError carries the server's reply when replication is not allowed.
// It wraps ErrReplicationRefused.
type RefusedError struct {
	Addr  string // redacted URL
	Reply string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("replication is not allowed on %s (PSYNC replied %q): the server may rename or disable replication commands, as managed services such as ElastiCache do; use --method bgsave instead", e.Addr, e.Reply)
}

func (e *RefusedError) Unwrap() error { return ErrReplicationRefused }

// Command is one command of the replication stream.
type Command struct {
	Args [][]byte
	// Offset is the replication offset before the command: its bytes are
	// Offset+1 ... Offset+Len in PSYNC numbering, and End() is the offset
	// after it.
	Offset int64
	Len    int64
	// DB is the database the command applies to (tracking SELECT inside
	// and outside MULTI). For SELECT itself it is the new database.
	DB int
}

// End is the replication offset after the command.
func (c Command) End() int64 { return c.Offset + c.Len }

// Name is the upper-cased command name.
func (c Command) Name() string { return strings.ToUpper(string(c.Args[0])) }

// SyncResult describes the answer to PSYNC.
type SyncResult struct {
	// Full is true for +FULLRESYNC (RDB follows), false for +CONTINUE.
	Full bool
	// Position is where the stream starts: the snapshot's {replid, offset}
	// for a full sync, or the requested position (with the new replid, if
	// any) for a partial one.
	Position Position
	// Diskless is true for the $EOF:<mark> framing.
	Diskless bool
	// Size is the RDB length for the $<len> framing, -1 for $EOF:.
	Size int64
	// RDB streams exactly the RDB bytes (the EOF mark removed) and then
	// returns io.EOF. Nil for a partial sync. It buffers at most a read
	// buffer, and a stalled primary makes it fail after Config.IOTimeout.
	RDB io.Reader
	// NewReplID is the id from "+CONTINUE <id>" when it differs from the
	// requested one (the primary's history changed, e.g. a failover).
	NewReplID string
	// WaitedBeforePayload is the time from PSYNC to the payload header (or
	// to +CONTINUE): the primary's fork, its BGSAVE for a disk-based sync,
	// or its repl-diskless-sync-delay.
	WaitedBeforePayload time.Duration
	// Keepalives counts the bare "\n" the primary sent while making us
	// wait (about one per second).
	Keepalives int
}

type connState int

const (
	stateHandshake connState = iota
	stateRDB
	stateStream
	stateBroken
)

// Conn is a replica connection. Sync and the RDB reader and Next must be
// called from one goroutine; Position, SetAckOffset and Close are safe from
// any goroutine.
type Conn struct {
	cfg  Config
	addr string // redacted URL
	nc   net.Conn
	dc   *deadlineConn
	br   *bufio.Reader
	rr   *resp.Reader

	rdbOnly bool

	wmu  sync.Mutex // serializes writes to nc
	wbuf []byte

	state      connState
	rdb        io.Reader
	offset     int64 // bytes of the stream read so far
	inMulti    bool
	db, preDB  int
	replID     atomic.Pointer[string]
	posOffset  atomic.Int64 // last complete unit
	ackOffset  atomic.Int64
	ackByOwner atomic.Bool

	mu       sync.Mutex // guards closed and the ACK goroutine start
	closed   bool
	acking   bool
	stop     chan struct{}
	ackNow   chan struct{} // AckNow's nudge to the ACK loop (buffered, 1)
	wg       sync.WaitGroup
	closeErr error
}

// Dial connects to the primary at u and performs the replica handshake:
// PING, AUTH when u carries credentials (or the server demands them),
// REPLCONF listening-port, REPLCONF capa eof capa psync2 and, with
// cfg.RDBOnly, REPLCONF rdb-only 1. Errors name u redacted, never the
// password; a credentials problem wraps ErrAuth.
func Dial(ctx context.Context, u *redisurl.URL, cfg Config) (*Conn, error) {
	cfg = cfg.withDefaults()
	nc, err := u.Dial(ctx)
	if err != nil {
		return nil, err
	}
	dc := &deadlineConn{Conn: nc, timeout: cfg.IOTimeout}
	br := bufio.NewReaderSize(dc, 64<<10)
	c := &Conn{
		cfg:  cfg,
		addr: u.Redacted(),
		nc:   nc,
		dc:   dc,
		br:   br,
		rr: resp.NewReader(br, resp.Options{
			MaxBulkLen:    cfg.MaxCommandBytes,
			MaxCommandLen: cfg.MaxCommandBytes,
			MaxArrayLen:   max(cfg.MaxCommandBytes/6, 1024),
		}),
		stop:   make(chan struct{}),
		ackNow: make(chan struct{}, 1),
	}
	empty := ""
	c.replID.Store(&empty)
	if err := c.handshake(ctx, u); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) handshake(ctx context.Context, u *redisurl.URL) error {
	defer c.watch(ctx)()
	user, pass := u.Username, u.Password.Reveal()
	v, err := c.roundTrip(ctx, "PING")
	needAuth := false
	if err != nil {
		var re resp.Error
		if !errors.As(err, &re) {
			return err
		}
		msg := string(re)
		switch {
		case re.Code() == "NOAUTH", re.Code() == "NOPERM", strings.HasPrefix(msg, "ERR operation not permitted"):
			needAuth = true
		default:
			return fmt.Errorf("ping %s: %w", c.addr, err)
		}
	} else if !strings.EqualFold(v.Text(), "PONG") {
		return fmt.Errorf("ping %s: unexpected reply %q", c.addr, v.Text())
	}
	if needAuth && pass == "" {
		return fmt.Errorf("%s requires a password; give it in the URL or in REDISCLI_AUTH: %w", c.addr, ErrAuth)
	}
	if pass != "" {
		args := []string{"AUTH", pass}
		if user != "" {
			args = []string{"AUTH", user, pass}
		}
		if _, err := c.roundTrip(ctx, args...); err != nil {
			var re resp.Error
			if !errors.As(err, &re) {
				return err
			}
			who := user
			if who == "" {
				who = "default"
			}
			// The reply is the server's text (e.g. WRONGPASS invalid
			// username-password pair); it never echoes the password.
			return fmt.Errorf("authenticate to %s as user %s: %w: %s", c.addr, who, ErrAuth, re)
		}
	}
	// Errors here are ignored, as Redis replicas do (very old servers),
	// except a refusal by ACL, which no older server explains.
	if _, err := c.roundTrip(ctx, "REPLCONF", "listening-port", strconv.Itoa(c.cfg.ListeningPort)); err != nil && (!isReply(err) || isNoPerm(err)) {
		return c.permErr(err)
	}
	if _, err := c.roundTrip(ctx, "REPLCONF", "capa", "eof", "capa", "psync2"); err != nil && (!isReply(err) || isNoPerm(err)) {
		return c.permErr(err)
	}
	// Valkey 9 writes its own RDB numbering (80) only to a replica that
	// says it is new enough, and fails the full sync of a dataset RDB 11
	// cannot hold (hash-field TTLs) otherwise. Redis answers an error.
	if _, err := c.roundTrip(ctx, "REPLCONF", "version", AnnouncedVersion); err != nil && !isReply(err) {
		return err
	}
	if c.cfg.RDBOnly {
		_, err := c.roundTrip(ctx, "REPLCONF", "rdb-only", "1")
		switch {
		case err == nil:
			c.rdbOnly = true
		case isNoPerm(err):
			return c.permErr(err)
		case isReply(err):
			c.cfg.Logger.Info("server does not support rdb-only replication (Redis < 6.2); the link will carry the command stream after the snapshot", "addr", c.addr, "reply", err.Error())
		default:
			return err
		}
	}
	return nil
}

// isNoPerm reports whether err is the server's refusal by ACL.
func isNoPerm(err error) bool {
	var re resp.Error
	return errors.As(err, &re) && re.Code() == "NOPERM"
}

// permErr names what a NOPERM reply means for a replica link; other
// errors pass unchanged.
func (c *Conn) permErr(err error) error {
	if !isNoPerm(err) {
		return err
	}
	return fmt.Errorf("%s: %w: the user lacks a permission the replication handshake needs (see redback acl): %w", c.addr, ErrReplicationRefused, err)
}

func isReply(err error) bool {
	var re resp.Error
	return errors.As(err, &re)
}

// Info runs INFO section on the connection, after Dial and before Sync (for
// example to read the primary's replication ids and decide what to ask
// PSYNC for).
func (c *Conn) Info(ctx context.Context, section string) (string, error) {
	if c.state != stateHandshake {
		return "", errors.New("replica: Info called after Sync")
	}
	defer c.watch(ctx)()
	v, err := c.roundTrip(ctx, "INFO", section)
	if err != nil {
		if isReply(err) {
			return "", fmt.Errorf("INFO %s on %s: %w", section, c.addr, err)
		}
		c.state = stateBroken
		return "", err
	}
	return v.Text(), nil
}

// RDBOnly reports whether the primary accepted REPLCONF rdb-only.
func (c *Conn) RDBOnly() bool { return c.rdbOnly }

// roundTrip sends a command and reads one reply. A server error is returned
// as resp.Error.
func (c *Conn) roundTrip(ctx context.Context, args ...string) (resp.Value, error) {
	if err := c.write(args...); err != nil {
		return resp.Value{}, c.ioErr(ctx, fmt.Sprintf("send %s", args[0]), err)
	}
	v, err := c.rr.ReadValue()
	if err != nil && !isReply(err) {
		return v, c.ioErr(ctx, fmt.Sprintf("read %s reply", args[0]), err)
	}
	return v, err
}

func (c *Conn) write(args ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = resp.AppendCommandString(c.wbuf[:0], args...)
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.cfg.IOTimeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(c.wbuf)
	return err
}

// ioErr wraps a transport error with context, preferring the context's
// error when it caused the failure.
func (c *Conn) ioErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s from %s: %w", what, c.addr, ctx.Err())
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !c.dc.isInterrupted() {
		return fmt.Errorf("%s from %s: no data for %s: %w", what, c.addr, c.cfg.IOTimeout, err)
	}
	return fmt.Errorf("%s from %s: %w", what, c.addr, err)
}

// watch makes ctx's end interrupt blocked reads; call the returned func when
// done. An interrupt breaks the Conn for good.
func (c *Conn) watch(ctx context.Context) func() {
	if ctx.Done() == nil {
		return func() {}
	}
	stop := context.AfterFunc(ctx, c.dc.interrupt)
	return func() { stop() }
}

// readStatus reads one line of a PSYNC reply, skipping and counting bare
// "\n" keepalives.
func (c *Conn) readStatus(keepalives *int) (string, error) {
	for i := 0; ; i++ {
		line, err := c.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return "", fmt.Errorf("status line longer than %d bytes", c.br.Size())
		}
		if err != nil {
			return "", err
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			*keepalives++
			continue
		}
		return s, nil
	}
}

// Sync sends PSYNC for pos (PSYNC ? -1 when pos is zero, else
// PSYNC <ReplID> <Offset+1>) and reads the reply and, for a full sync, the
// payload header. It may be called once per Conn.
//
// Errors: *RetryableError (LOADING, NOMASTERLINK, BUSY), *RefusedError
// wrapping ErrReplicationRefused (PSYNC unknown, renamed, or refused), an
// error wrapping ErrSyncAborted (the primary's BGSAVE failed), or a
// transport error.
func (c *Conn) Sync(ctx context.Context, pos Position) (*SyncResult, error) {
	if c.state != stateHandshake {
		return nil, errors.New("replica: Sync called twice")
	}
	c.state = stateBroken // until it succeeds
	defer c.watch(ctx)()
	id, off := "?", "-1"
	if !pos.IsZero() {
		id, off = pos.ReplID, strconv.FormatInt(pos.Offset+1, 10)
	}
	start := time.Now()
	if err := c.write("PSYNC", id, off); err != nil {
		return nil, c.ioErr(ctx, "send PSYNC", err)
	}
	res := &SyncResult{}
	line, err := c.readStatus(&res.Keepalives)
	if err != nil {
		return nil, c.ioErr(ctx, "read PSYNC reply", err)
	}
	switch {
	case strings.HasPrefix(line, "+FULLRESYNC"):
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("psync on %s: malformed reply %q", c.addr, clipText(line))
		}
		o, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || o < 0 {
			return nil, fmt.Errorf("psync on %s: bad offset in %q", c.addr, clipText(line))
		}
		res.Full = true
		res.Position = Position{ReplID: f[1], Offset: o}
	case strings.HasPrefix(line, "+CONTINUE"):
		f := strings.Fields(line)
		if pos.IsZero() || len(f) > 2 {
			return nil, fmt.Errorf("psync on %s: unexpected reply %q", c.addr, clipText(line))
		}
		res.Position = pos
		if len(f) == 2 && f[1] != pos.ReplID {
			res.NewReplID = f[1]
			res.Position.ReplID = f[1]
		}
		res.WaitedBeforePayload = time.Since(start)
		c.setPosition(res.Position)
		c.offset = pos.Offset
		c.state = stateStream
		c.startAcks()
		return res, nil
	case strings.HasPrefix(line, "-"):
		return nil, c.psyncError(line[1:])
	default:
		return nil, fmt.Errorf("psync on %s: unexpected reply %q", c.addr, clipText(line))
	}

	hdr, err := c.readStatus(&res.Keepalives)
	if err != nil {
		return nil, c.ioErr(ctx, "read RDB header", err)
	}
	res.WaitedBeforePayload = time.Since(start)
	switch {
	case strings.HasPrefix(hdr, "-"):
		return nil, c.psyncError(hdr[1:])
	case strings.HasPrefix(hdr, "$EOF:"):
		mark := hdr[5:]
		if len(mark) != eofMarkLen {
			return nil, fmt.Errorf("psync on %s: bad EOF mark in %q", c.addr, clipText(hdr))
		}
		res.Diskless, res.Size = true, -1
		c.rdb = &eofReader{c: c, mark: []byte(mark)}
	case strings.HasPrefix(hdr, "$"):
		n, err := strconv.ParseInt(hdr[1:], 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("psync on %s: bad payload header %q", c.addr, clipText(hdr))
		}
		res.Size = n
		c.rdb = &lenReader{c: c, left: n, size: n}
		c.startAcks() // a length-framed payload cannot be confused with ACK-triggered bytes
	default:
		return nil, fmt.Errorf("psync on %s: unexpected payload header %q", c.addr, clipText(hdr))
	}
	c.offset = res.Position.Offset
	c.setPosition(res.Position)
	c.state = stateRDB
	res.RDB = c.rdb
	return res, nil
}

func (c *Conn) psyncError(msg string) error {
	re := resp.Error(msg)
	switch {
	case strings.Contains(msg, "BGSAVE failed"):
		return fmt.Errorf("full sync from %s: %w: %s", c.addr, ErrSyncAborted, msg)
	case re.Code() == "LOADING", re.Code() == "NOMASTERLINK", re.Code() == "BUSY", re.Code() == "MASTERDOWN", re.Code() == "TRYAGAIN":
		return &RetryableError{Reply: msg}
	default:
		return &RefusedError{Addr: c.addr, Reply: msg}
	}
}

func clipText(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// rdbDone ends the payload phase.
func (c *Conn) rdbDone() {
	if c.state == stateRDB {
		c.state = stateStream
	}
}

const eofMarkLen = 40

// AnnouncedVersion is the server version redback announces as a replica
// (REPLCONF version): the newest Valkey whose RDB numbering the rdb
// package reads (Valkey 9.0 and 9.1: RDB 80).
const AnnouncedVersion = "9.1.0"

// lenReader streams a $<len> payload.
type lenReader struct {
	c          *Conn
	left, size int64
	err        error
}

func (r *lenReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.left == 0 {
		r.c.rdbDone()
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.c.br.Read(p)
	r.left -= int64(n)
	if err != nil {
		r.c.state = stateBroken
		r.err = r.c.ioErr(context.TODO(), fmt.Sprintf("read RDB payload (byte %d of %d)", r.size-r.left, r.size), err)
		return n, r.err
	}
	return n, nil
}

// eofReader streams a $EOF:<mark> payload, holding back the last 40 bytes
// received until it knows whether they are the mark.
type eofReader struct {
	c    *Conn
	mark []byte
	done bool
	read int64
	err  error
}

func (r *eofReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.done {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	br := r.c.br
	for {
		n := br.Buffered()
		if n > eofMarkLen {
			k := min(len(p), n-eofMarkLen)
			m, _ := br.Read(p[:k]) // served from the buffer, cannot fail
			r.read += int64(m)
			return m, nil
		}
		if n == eofMarkLen {
			if b, _ := br.Peek(eofMarkLen); bytes.Equal(b, r.mark) {
				_, _ = br.Discard(eofMarkLen)
				r.done = true
				r.c.rdbDone()
				r.c.startAcks()
				return 0, io.EOF
			}
		}
		if _, err := br.Peek(n + 1); err != nil {
			r.c.state = stateBroken
			r.err = r.c.ioErr(context.TODO(), fmt.Sprintf("read diskless RDB payload after %d bytes (no end mark)", r.read), err)
			return 0, r.err
		}
	}
}

// setPosition publishes the last complete unit.
func (c *Conn) setPosition(p Position) {
	id := p.ReplID
	c.replID.Store(&id)
	c.posOffset.Store(p.Offset)
}

// Position is the last complete unit processed: the snapshot position after
// a full sync (meaningful only once the whole RDB was read and stored), then
// the end of the last command outside MULTI or of the last EXEC. Resume from
// it with Sync.
func (c *Conn) Position() Position {
	return Position{ReplID: *c.replID.Load(), Offset: c.posOffset.Load()}
}

// SetDB sets the database the stream is in, for a partial sync that resumes
// after a SELECT (a primary only re-sends SELECT when the database
// changes). The default is 0.
func (c *Conn) SetDB(db int) { c.db = db }

// SetAckOffset makes the ACK heartbeat and GETACK answers report off (for
// example the end of what is durably stored) instead of Position().Offset.
func (c *Conn) SetAckOffset(off int64) {
	c.ackOffset.Store(off)
	c.ackByOwner.Store(true)
}

func (c *Conn) ackValue() int64 {
	if c.ackByOwner.Load() {
		return c.ackOffset.Load()
	}
	return c.posOffset.Load()
}

// Next returns the next command of the stream. It first drains any unread
// RDB bytes. With an accepted rdb-only request there is no stream and Next
// returns io.EOF. Every command is returned, including PING, SELECT, MULTI,
// EXEC and REPLCONF GETACK (answered automatically), so that offsets stay
// contiguous. The Args are fresh slices the caller may keep, unless
// Config.SharedArgs.
func (c *Conn) Next(ctx context.Context) (Command, error) {
	switch c.state {
	case stateHandshake:
		return Command{}, errors.New("replica: Next called before Sync")
	case stateBroken:
		return Command{}, errors.New("replica: connection is broken after an earlier error; reconnect and resume from Position()")
	case stateRDB:
		if _, err := io.Copy(io.Discard, c.rdb); err != nil {
			return Command{}, err
		}
	}
	if c.rdbOnly {
		return Command{}, io.EOF
	}
	defer c.watch(ctx)()
	read := c.rr.ReadCommand
	if c.cfg.SharedArgs {
		read = c.rr.ReadCommandShared
	}
	args, n, err := read()
	if err != nil {
		c.state = stateBroken
		var pe *resp.ProtocolError
		if errors.As(err, &pe) {
			return Command{}, fmt.Errorf("replication stream from %s at offset %d: %w", c.addr, c.offset, err)
		}
		return Command{}, c.ioErr(ctx, fmt.Sprintf("read replication stream at offset %d", c.offset), err)
	}
	cmd := Command{Args: args, Offset: c.offset, Len: n, DB: c.db}
	c.offset += n
	name := args[0]
	switch {
	case resp.IsName(name, "SELECT") && len(args) == 2:
		db, err := strconv.Atoi(string(args[1]))
		if err != nil || db < 0 {
			c.state = stateBroken
			return Command{}, fmt.Errorf("replication stream from %s at offset %d: bad SELECT %q", c.addr, cmd.Offset, clipText(string(args[1])))
		}
		c.db, cmd.DB = db, db
	case resp.IsName(name, "MULTI"):
		c.inMulti, c.preDB = true, c.db
	case resp.IsName(name, "EXEC"):
		c.inMulti = false
	case resp.IsName(name, "DISCARD"):
		c.inMulti, c.db = false, c.preDB
	case resp.IsName(name, "REPLCONF") && len(args) >= 2 && resp.IsName(args[1], "GETACK"):
		// Report the offset before the GETACK, as Redis replicas do.
		if err := c.write("REPLCONF", "ACK", strconv.FormatInt(c.ackValue(), 10)); err != nil {
			c.state = stateBroken
			return Command{}, c.ioErr(ctx, "answer GETACK", err)
		}
	}
	if !c.inMulti {
		c.posOffset.Store(c.offset)
	}
	return cmd, nil
}

func (c *Conn) startAcks() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.acking {
		return
	}
	c.acking = true
	c.wg.Add(1)
	go c.ackLoop()
}

func (c *Conn) ackLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.AckInterval)
	defer t.Stop()
	for {
		// Errors are left to the reader, which sees the same broken link.
		_ = c.write("REPLCONF", "ACK", strconv.FormatInt(c.ackValue(), 10))
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.ackNow:
		}
	}
}

// AckNow makes the ACK loop send REPLCONF ACK now instead of at its next
// tick (for example right after SetAckOffset raised the durable offset, so
// that WAIT on the primary returns as soon as a write is stored). It never
// blocks; nudges while one is pending are merged.
func (c *Conn) AckNow() {
	select {
	case c.ackNow <- struct{}{}:
	default:
	}
}

// Close closes the connection, stops the ACK goroutine and waits for it.
// It is safe to call more than once.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.closeErr
	}
	c.closed = true
	close(c.stop)
	c.closeErr = c.nc.Close()
	c.mu.Unlock()
	c.wg.Wait()
	return c.closeErr
}

// deadlineConn renews the read deadline before every read, so a silent
// primary fails after timeout, and lets a context end interrupt a blocked
// read.
type deadlineConn struct {
	net.Conn
	timeout     time.Duration
	mu          sync.Mutex
	interrupted bool
}

var errInterrupted = errors.New("interrupted by context")

func (d *deadlineConn) Read(p []byte) (int, error) {
	d.mu.Lock()
	if d.interrupted {
		d.mu.Unlock()
		return 0, errInterrupted
	}
	if err := d.Conn.SetReadDeadline(time.Now().Add(d.timeout)); err != nil {
		d.mu.Unlock()
		return 0, err
	}
	d.mu.Unlock()
	n, err := d.Conn.Read(p)
	if err != nil && d.isInterrupted() {
		err = errInterrupted
	}
	return n, err
}

func (d *deadlineConn) interrupt() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.interrupted = true
	_ = d.Conn.SetReadDeadline(time.Unix(1, 0))
}

func (d *deadlineConn) isInterrupted() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.interrupted
}

// DelayHint explains why a primary made a full sync wait before sending its
// RDB: its repl-diskless-sync-delay (then: set it to 0), or, when that is
// already 0, another replica's full sync or a BGSAVE that was in progress
// (the primary serves one at a time). It asks the server with CONFIG GET
// and falls back to naming both causes when that is not permitted.
func DelayHint(ctx context.Context, u *redisurl.URL, waited time.Duration) string {
	w := waited.Round(time.Millisecond)
	c := redis.NewClient(u.GoRedisOptions())
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := c.ConfigGet(ctx, "repl-diskless-sync-delay").Result()
	switch {
	case err != nil || v["repl-diskless-sync-delay"] == "":
		return fmt.Sprintf("the source waited %s before sending its RDB: its repl-diskless-sync-delay (set it to 0) or another replica's full sync in progress", w)
	case v["repl-diskless-sync-delay"] == "0":
		return fmt.Sprintf("the source waited %s before sending its RDB: another replica's full sync (or a BGSAVE) was in progress on it (repl-diskless-sync-delay is already 0)", w)
	}
	return fmt.Sprintf("the source waited %s before sending its RDB: set repl-diskless-sync-delay 0 on it (it is %ss) to avoid the wait", w, v["repl-diskless-sync-delay"])
}
