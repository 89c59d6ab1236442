// Package replicatest runs a fake Redis primary on 127.0.0.1 for tests: it
// speaks the replica handshake and serves a given RDB payload with either
// framing, or a chosen refusal, so callers can test corrupt payloads, slow
// primaries and servers that refuse PSYNC without a real redis-server.
package replicatest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"redback/internal/resp"
)

// Options shapes the fake primary's behaviour. The zero value serves the
// payload with $<len> framing after +FULLRESYNC <ReplID> 0.
type Options struct {
	// Diskless uses the "$EOF:<40-byte mark>" framing; the Stream is then
	// only sent after the first REPLCONF ACK, as a real diskless primary
	// does.
	Diskless bool
	// ReplID is sent in +FULLRESYNC; default 40 'a's.
	ReplID string
	// Offset is sent in +FULLRESYNC.
	Offset int64
	// Username and Password, when Password is set, are required: commands
	// before AUTH get -NOAUTH, a wrong pair -WRONGPASS.
	Username, Password string
	// PSYNCReply, when set, is sent as the whole reply to PSYNC/SYNC (a
	// line without CRLF, e.g. "-ERR unknown command 'PSYNC'" or
	// "+CONTINUE <id>").
	PSYNCReply string
	// RejectRDBOnly answers REPLCONF rdb-only with an error, like a server
	// older than 6.2.
	RejectRDBOnly bool
	// Keepalives is the number of bare "\n" sent before +FULLRESYNC, and
	// again between it and the payload header.
	Keepalives int
	// AbortReply, when set, is sent instead of the payload header after
	// +FULLRESYNC (e.g. "-ERR BGSAVE failed, replication can't continue").
	AbortReply string
	// Stream is sent after the payload (or after PSYNCReply).
	Stream []byte
	// CloseAfterPayload closes the connection after the payload (as a
	// primary does for rdb-only replicas), or after PSYNCReply and Stream
	// (to simulate a truncated transfer).
	CloseAfterPayload bool
}

// EOFMark is the mark used with Options.Diskless.
const EOFMark = "0123456789abcdef0123456789abcdef01234567"

// Primary is a running fake primary. It stops when the test ends.
type Primary struct {
	t       testing.TB
	payload []byte
	opts    Options
	l       net.Listener
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	cmds  [][]string
}

// NewPrimary starts a fake primary serving payload and returns it; Addr
// gives its address. It serves any number of connections.
func NewPrimary(t testing.TB, payload []byte, opts Options) *Primary {
	t.Helper()
	if opts.ReplID == "" {
		opts.ReplID = strings.Repeat("a", 40)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("replicatest: listen: %v", err)
	}
	p := &Primary{t: t, payload: payload, opts: opts, l: l, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is "127.0.0.1:PORT".
func (p *Primary) Addr() string { return p.l.Addr().String() }

// URL is "redis://127.0.0.1:PORT".
func (p *Primary) URL() string { return "redis://" + p.Addr() }

// Commands returns the commands received so far, across connections, with
// AUTH passwords replaced by "xxxxx".
func (p *Primary) Commands() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]string, len(p.cmds))
	for i, c := range p.cmds {
		out[i] = append([]string(nil), c...)
	}
	return out
}

func (p *Primary) close() {
	_ = p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Primary) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() {
				p.mu.Lock()
				delete(p.conns, c)
				p.mu.Unlock()
				_ = c.Close()
			}()
			p.serve(c)
		}()
	}
}

// writeAndHangUp writes out and ends the connection the way a primary's
// close reads to the replica: the end of the stream. It shuts down its
// sending side first and reads what the replica still sends (an ACK, for
// at most 10 s) before the close; a plain close with the replica's bytes
// unread would send a reset, which the replica could see before the data.
func writeAndHangUp(c net.Conn, out []byte) {
	_, _ = c.Write(out)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.Copy(io.Discard, c)
}

func (p *Primary) serve(c net.Conn) {
	o := p.opts
	r := resp.NewReader(c, resp.Options{MaxCommandLen: 1 << 20})
	authed := o.Password == ""
	streamOnAck := false
	for {
		args, _, err := r.ReadCommand()
		if err != nil {
			return
		}
		rec := make([]string, len(args))
		for i, a := range args {
			rec[i] = string(a)
		}
		name := strings.ToUpper(rec[0])
		if name == "AUTH" && len(rec) > 1 {
			rec[len(rec)-1] = "xxxxx"
		}
		p.mu.Lock()
		p.cmds = append(p.cmds, rec)
		p.mu.Unlock()
		var out []byte
		switch {
		case name == "AUTH":
			user, pass := "default", string(args[len(args)-1])
			if len(args) == 3 {
				user = string(args[1])
			}
			wantUser := o.Username
			if wantUser == "" {
				wantUser = "default"
			}
			if o.Password == "" {
				out = []byte("-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n")
			} else if user == wantUser && pass == o.Password {
				authed = true
				out = []byte("+OK\r\n")
			} else {
				out = []byte("-WRONGPASS invalid username-password pair or user is disabled.\r\n")
			}
		case !authed:
			out = []byte("-NOAUTH Authentication required.\r\n")
		case name == "PING":
			out = []byte("+PONG\r\n")
		case name == "REPLCONF" && len(rec) > 1 && strings.EqualFold(rec[1], "ACK"):
			if streamOnAck {
				streamOnAck = false
				out = o.Stream
			}
		case name == "REPLCONF" && len(rec) > 1 && strings.EqualFold(rec[1], "rdb-only") && o.RejectRDBOnly:
			out = []byte("-ERR Unrecognized REPLCONF option: rdb-only\r\n")
		case name == "REPLCONF":
			out = []byte("+OK\r\n")
		case name == "PSYNC" || name == "SYNC":
			ka := bytes.Repeat([]byte("\n"), o.Keepalives)
			out = append(out, ka...)
			if o.PSYNCReply != "" {
				out = append(out, o.PSYNCReply+"\r\n"...)
				out = append(out, o.Stream...)
				if o.CloseAfterPayload {
					writeAndHangUp(c, out)
					return
				}
				break
			}
			out = append(out, fmt.Sprintf("+FULLRESYNC %s %d\r\n", o.ReplID, o.Offset)...)
			out = append(out, ka...)
			if o.AbortReply != "" {
				out = append(out, o.AbortReply+"\r\n"...)
				_, _ = c.Write(out)
				return
			}
			if o.Diskless {
				out = append(out, "$EOF:"+EOFMark+"\r\n"...)
				out = append(out, p.payload...)
				out = append(out, EOFMark...)
				streamOnAck = len(o.Stream) > 0
			} else {
				out = append(out, "$"+strconv.Itoa(len(p.payload))+"\r\n"...)
				out = append(out, p.payload...)
				out = append(out, o.Stream...)
			}
			if o.CloseAfterPayload {
				writeAndHangUp(c, out)
				return
			}
		default:
			out = []byte("-ERR unknown command '" + rec[0] + "'\r\n")
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}
