package primary

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"redback/internal/resp"
)

// Options tune Accept.
type Options struct {
	// Token is the password the replica must send with AUTH (the
	// server's masterauth); it is required.
	Token string
	// Offset is the replication offset announced in +FULLRESYNC.
	Offset int64
	// Timeout bounds each read and write of the handshake and each write
	// of the payload (DefaultTimeout when zero).
	Timeout time.Duration
}

// DefaultTimeout is Options.Timeout when it is zero.
const DefaultTimeout = 30 * time.Second

// handshake limits: a replica's commands are a few short words.
var handshakeLimits = resp.Options{MaxBulkLen: 4 << 10, MaxArrayLen: 16, MaxLineLen: 4 << 10, MaxCommandLen: 16 << 10}

// ErrNoEOFCapa is returned by Accept when the replica did not announce
// `capa eof` (servers before 2.8.18): the payload's length is not known
// ahead, so only the EOF-marked framing can carry it.
var ErrNoEOFCapa = errors.New("the replica does not accept the diskless ($EOF:) framing (REPLCONF capa eof)")

// HandshakeError is a replica's connection that was refused: a wrong or
// missing token, or a protocol error. Accept keeps waiting after one and
// returns the last one when the context ends.
type HandshakeError struct {
	Remote string
	Err    error
}

func (e *HandshakeError) Error() string { return fmt.Sprintf("replica %s: %v", e.Remote, e.Err) }
func (e *HandshakeError) Unwrap() error { return e.Err }

// Sync is an accepted replica waiting for its payload.
type Sync struct {
	// ReplID is the replication id announced in +FULLRESYNC.
	ReplID string
	// ListeningPort is what the replica announced (REPLCONF
	// listening-port), 0 if nothing.
	ListeningPort int
	// Capa lists the capabilities it announced (REPLCONF capa).
	Capa []string
	// Remote is the replica's address.
	Remote string

	nc      net.Conn
	bw      *bufio.Writer
	mark    string
	timeout time.Duration
	n       int64

	once    sync.Once
	drained chan struct{}
}

// Accept waits on l for a replica that authenticates with o.Token and asks
// for PSYNC, answers +FULLRESYNC and the $EOF: header, and returns the
// Sync to write the payload through. Connections that fail the handshake
// are closed and waiting goes on; when ctx ends, the last refusal (or
// ctx's error) is returned. Accept does not close l.
func Accept(ctx context.Context, l net.Listener, o Options) (*Sync, error) {
	if o.Token == "" {
		return nil, errors.New("primary: no token")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()
	var last error
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				if last != nil {
					return nil, fmt.Errorf("%w (before: %w)", ctx.Err(), last)
				}
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("accept a replica: %w", err)
		}
		s, err := handshake(ctx, nc, o)
		if err == nil {
			return s, nil
		}
		nc.Close()
		last = &HandshakeError{Remote: nc.RemoteAddr().String(), Err: err}
		if errors.Is(err, ErrNoEOFCapa) {
			return nil, last
		}
	}
}

func handshake(ctx context.Context, nc net.Conn, o Options) (*Sync, error) {
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	br := bufio.NewReaderSize(nc, 4<<10)
	rd := resp.NewReader(br, handshakeLimits)
	s := &Sync{nc: nc, bw: bufio.NewWriterSize(nc, 256<<10), timeout: o.Timeout, Remote: nc.RemoteAddr().String(), drained: make(chan struct{})}
	authed := false
	reply := func(line string) error {
		_ = nc.SetWriteDeadline(time.Now().Add(o.Timeout))
		if _, err := s.bw.WriteString(line + "\r\n"); err != nil {
			return err
		}
		return s.bw.Flush()
	}
	for i := 0; i < 64; i++ { // a handshake is a handful of commands
		_ = nc.SetReadDeadline(time.Now().Add(o.Timeout))
		args, _, err := rd.ReadCommand()
		if err != nil {
			return nil, fmt.Errorf("handshake: %w", err)
		}
		cmd := strings.ToUpper(string(args[0]))
		switch {
		case cmd == "PING":
			err = reply("+PONG")
		case cmd == "AUTH" && (len(args) == 2 || len(args) == 3):
			if subtle.ConstantTimeCompare(args[len(args)-1], []byte(o.Token)) != 1 {
				_ = reply("-WRONGPASS invalid username-password pair or user is disabled.")
				return nil, errors.New("wrong token in AUTH")
			}
			authed = true
			err = reply("+OK")
		case !authed:
			_ = reply("-NOAUTH Authentication required.")
			return nil, fmt.Errorf("%s before AUTH", cmd)
		case cmd == "REPLCONF":
			s.replconf(args[1:])
			err = reply("+OK")
		case cmd == "PSYNC" || cmd == "SYNC":
			if !s.hasCapa("eof") {
				_ = reply("-ERR redback streams the RDB diskless and needs REPLCONF capa eof")
				return nil, ErrNoEOFCapa
			}
			return s, s.start(cmd == "PSYNC", o)
		default:
			_ = reply("-ERR unknown command '" + cmd + "' (redback feeds one full sync)")
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, errors.New("handshake: too many commands")
}

func (s *Sync) replconf(args [][]byte) {
	for i := 0; i+1 < len(args); i += 2 {
		switch strings.ToLower(string(args[i])) {
		case "listening-port":
			s.ListeningPort, _ = strconv.Atoi(string(args[i+1]))
		case "capa":
			s.Capa = append(s.Capa, strings.ToLower(string(args[i+1])))
		}
	}
}

func (s *Sync) hasCapa(c string) bool {
	for _, x := range s.Capa {
		if x == c {
			return true
		}
	}
	return false
}

// start answers PSYNC (or SYNC) and writes the $EOF: header; the drain
// goroutine starts.
func (s *Sync) start(psync bool, o Options) error {
	var id, mark [20]byte
	_, _ = rand.Read(id[:])
	_, _ = rand.Read(mark[:])
	s.ReplID, s.mark = hex.EncodeToString(id[:]), hex.EncodeToString(mark[:])
	_ = s.nc.SetWriteDeadline(time.Now().Add(o.Timeout))
	if psync {
		fmt.Fprintf(s.bw, "+FULLRESYNC %s %d\r\n", s.ReplID, o.Offset)
	}
	fmt.Fprintf(s.bw, "$EOF:%s\r\n", s.mark)
	if err := s.bw.Flush(); err != nil {
		return err
	}
	_ = s.nc.SetReadDeadline(time.Time{})
	go s.drain()
	return nil
}

// drain reads and discards what the replica sends after PSYNC (newlines
// while it loads, REPLCONF ACK) until the connection ends.
func (s *Sync) drain() {
	defer close(s.drained)
	_, _ = io.Copy(io.Discard, s.nc)
}

// Write writes payload bytes (the RDB, from its header on).
func (s *Sync) Write(p []byte) (int, error) {
	_ = s.nc.SetWriteDeadline(time.Now().Add(s.timeout))
	n, err := s.bw.Write(p)
	s.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("send the payload to replica %s: %w", s.Remote, err)
	}
	return n, nil
}

// Done is closed when the replica closed the connection (or Close was
// called): after Finish, a replica that failed to load drops the link.
func (s *Sync) Done() <-chan struct{} { return s.drained }

// Written is the count of payload bytes written.
func (s *Sync) Written() int64 { return s.n }

// Finish writes the end mark and flushes: the replica now holds the whole
// payload and loads it.
func (s *Sync) Finish() error {
	_ = s.nc.SetWriteDeadline(time.Now().Add(s.timeout))
	if _, err := s.bw.WriteString(s.mark); err != nil {
		return fmt.Errorf("send the payload to replica %s: %w", s.Remote, err)
	}
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("send the payload to replica %s: %w", s.Remote, err)
	}
	return nil
}

// Close closes the connection and waits for the drain goroutine. A
// replica whose payload was not finished discards it.
func (s *Sync) Close() {
	s.once.Do(func() {
		_ = s.nc.Close()
		<-s.drained
	})
}
