// Package respconn is a raw RESP connection to a Redis server: dial,
// authenticate, send, read.
//
// Dial connects with a timeout (TCP, unix socket or TLS, as the URL says),
// sends AUTH when the URL carries a password, checks the server answers
// PING, and arranges for the connection to be closed when the context
// ends. The Conn then exposes its buffered writer and reader, so callers
// can pipeline commands and parse replies without per-command allocations;
// Do is the simple one-command-one-reply path, Info reads what callers
// check about the server (version, cluster mode, role, keys per db).
//
// Dial's errors say what went wrong in words a user can act on (the Msg
// constants) and carry the cause, as a *ServerError naming the server's
// role (restore's "target ...", migrate's "source ..."), which is also the
// error those packages give for anything else that goes wrong with the
// server; Options.Error lets a caller build its own. The password never
// appears in a message.
package respconn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"redback/internal/redisurl"
	"redback/internal/resp"
)

// The messages of Dial's errors that users act on.
const (
	MsgUnreachable  = "unreachable"
	MsgAuthFailed   = "authentication failed (check the password in the URL, $REDISCLI_AUTH or $REDIS_PASSWORD)"
	MsgAuthenticate = "authenticate"
	MsgNoAuth       = "the server requires a password: put it in the URL (redis://:PASSWORD@host:port) or in $REDISCLI_AUTH"
	MsgPing         = "PING"
)

// DefaultBufferSize is the read and write buffer size when Options leaves
// it at zero.
const DefaultBufferSize = 64 << 10

// DefaultTimeout bounds dialing and the AUTH/PING handshake when Options
// leaves Timeout at zero.
const DefaultTimeout = 30 * time.Second

// Options tunes Dial.
type Options struct {
	// Timeout bounds the dial and the AUTH/PING handshake; afterwards the
	// connection has no deadline until the caller sets one.
	Timeout time.Duration
	// ReadBuffer and WriteBuffer are the sizes of the buffered reader and
	// writer (a reply line longer than ReadBuffer cannot be Peeked).
	ReadBuffer, WriteBuffer int
	// Role names the server in Dial's *ServerError (RoleSource,
	// RoleTarget or "").
	Role string
	// Error makes Dial's error from the redacted address, what failed (one
	// of the Msg constants) and the cause (a resp.Error for a refusal by
	// the server); nil makes a *ServerError.
	Error func(addr, msg string, err error) error
}

// Roles of a server in a ServerError.
const (
	RoleSource = "source" // what a migration reads
	RoleTarget = "target" // what a restore writes
)

// ServerError is a problem with a server that stops the work: Role says
// which server it is (RoleSource, RoleTarget, or "" for neither), Addr is
// its redacted URL, Msg what failed and Err why (nil when Msg says all).
type ServerError struct {
	Role, Addr, Msg string
	Err             error
}

func (e *ServerError) Error() string {
	s := e.Addr
	if e.Role != "" {
		s = e.Role + " " + s
	}
	if e.Err == nil {
		return s + ": " + e.Msg
	}
	return fmt.Sprintf("%s: %s: %v", s, e.Msg, e.Err)
}

func (e *ServerError) Unwrap() error { return e.Err }

// Conn is one raw connection. It is not safe for concurrent use, except
// that Close may be called from any goroutine (to abort a blocked read or
// write).
type Conn struct {
	// DB is the db selected on the connection, for callers that send
	// SELECT to keep up to date: Dial selects none (0, whatever the URL
	// names).
	DB int

	nc   net.Conn
	bw   *bufio.Writer
	br   *bufio.Reader
	rd   *resp.Reader
	addr string
	stop func() bool
}

// Dial connects to the server at u, authenticates (AUTH [user] password,
// when u has a password) and checks that the server answers PING. The
// connection is closed when ctx ends; Close releases it earlier.
func Dial(ctx context.Context, u *redisurl.URL, o Options) (*Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ReadBuffer <= 0 {
		o.ReadBuffer = DefaultBufferSize
	}
	if o.WriteBuffer <= 0 {
		o.WriteBuffer = DefaultBufferSize
	}
	newErr := o.Error
	if newErr == nil {
		newErr = func(addr, msg string, err error) error {
			return &ServerError{Role: o.Role, Addr: addr, Msg: msg, Err: err}
		}
	}
	addr := u.Redacted()
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	nc, err := u.Dial(dctx)
	if err != nil {
		return nil, newErr(addr, MsgUnreachable, err)
	}
	br := bufio.NewReaderSize(nc, o.ReadBuffer)
	c := &Conn{nc: nc, bw: bufio.NewWriterSize(nc, o.WriteBuffer), br: br, rd: resp.NewReader(br, resp.Options{}), addr: addr}
	c.stop = context.AfterFunc(ctx, func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(o.Timeout))
	if pw := u.Password.Reveal(); pw != "" {
		args := []string{"AUTH", pw}
		if u.Username != "" {
			args = []string{"AUTH", u.Username, pw}
		}
		if _, err := c.Do(args...); err != nil {
			c.Close()
			var re resp.Error
			if errors.As(err, &re) {
				// the server's message never echoes the password
				return nil, newErr(addr, MsgAuthFailed, re)
			}
			return nil, newErr(addr, MsgAuthenticate, err)
		}
	}
	if _, err := c.Do("PING"); err != nil {
		c.Close()
		var re resp.Error
		if errors.As(err, &re) && re.Code() == "NOAUTH" {
			return nil, newErr(addr, MsgNoAuth, re)
		}
		return nil, newErr(addr, MsgPing, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// Close closes the connection (safe to call more than once, and from
// another goroutine to abort a blocked read or write).
func (c *Conn) Close() {
	if c.stop != nil {
		c.stop()
	}
	c.nc.Close()
}

// LocalAddr is this end's address of the connection.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Addr is the server's redacted URL, for messages.
func (c *Conn) Addr() string { return c.addr }

// Writer is the buffered writer: write commands (resp.AppendCommand), then
// Flush.
func (c *Conn) Writer() *bufio.Writer { return c.bw }

// Reader parses replies; an error reply comes back as a resp.Error.
func (c *Conn) Reader() *resp.Reader { return c.rd }

// Raw is the buffered reader under Reader, for callers that parse some
// replies themselves (Peek, ReadSlice) without allocating. Reads through it
// and through Reader may be interleaved, between whole replies.
func (c *Conn) Raw() *bufio.Reader { return c.br }

// SetDeadline sets the read and write deadline (zero: none).
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// SetReadDeadline sets the read deadline (zero: none).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline (zero: none).
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// Do sends one command and reads its reply; an error reply is returned as
// a resp.Error (with the Value). Replies to commands written before through
// Writer must have been read.
func (c *Conn) Do(args ...string) (resp.Value, error) {
	if _, err := c.bw.Write(resp.AppendCommandString(nil, args...)); err != nil {
		return resp.Value{}, err
	}
	if err := c.bw.Flush(); err != nil {
		return resp.Value{}, err
	}
	return c.rd.ReadValue()
}

// okReply is the most common status reply.
var okReply = []byte("+OK\r\n")

// ReadOK consumes a "+OK" reply without allocating and reports whether it
// did; otherwise nothing is consumed (read the reply with Reader).
func (c *Conn) ReadOK() bool {
	p, err := c.br.Peek(len(okReply))
	if err != nil || string(p) != string(okReply) {
		return false
	}
	_, _ = c.br.Discard(len(okReply))
	return true
}
