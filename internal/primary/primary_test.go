package primary

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"redback/internal/resp"
)

// replicaSays dials l, sends cmds (RESP arrays) and returns the replies
// read until the connection ends or n lines came.
func replicaSays(t *testing.T, addr string, n int, cmds ...[]string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var buf []byte
	for _, cmd := range cmds {
		buf = resp.AppendCommandString(buf, cmd...)
	}
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []string
	for range n {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		out = append(out, strings.TrimRight(line, "\r\n"))
	}
	return out
}

func TestAccept(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		s   *Sync
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Accept(t.Context(), l, Options{Token: "tok", Offset: 7, Timeout: 5 * time.Second})
		done <- result{s, err}
	}()
	// Refused: a wrong token, PSYNC before AUTH. Accept keeps waiting.
	if got := replicaSays(t, l.Addr().String(), 3, []string{"PING"}, []string{"AUTH", "nope"}, []string{"PSYNC", "?", "-1"}); len(got) != 2 || got[0] != "+PONG" || !strings.HasPrefix(got[1], "-WRONGPASS") {
		t.Errorf("wrong token: %q", got)
	}
	if got := replicaSays(t, l.Addr().String(), 2, []string{"PSYNC", "?", "-1"}); len(got) != 1 || !strings.HasPrefix(got[0], "-NOAUTH") {
		t.Errorf("PSYNC before AUTH: %q", got)
	}
	// Accepted: the Redis 7 handshake.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var buf []byte
	for _, cmd := range [][]string{{"PING"}, {"AUTH", "tok"}, {"REPLCONF", "listening-port", "6380"}, {"REPLCONF", "capa", "eof", "capa", "psync2"}, {"PSYNC", "?", "-1"}} {
		buf = resp.AppendCommandString(buf, cmd...)
	}
	c.Write(buf)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	s := r.s
	if s.ListeningPort != 6380 || len(s.Capa) != 2 || len(s.ReplID) != 40 {
		t.Errorf("sync %+v", s)
	}
	s.Write([]byte("REDIS0010payload"))
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("\n\n")) // keepalives, drained
	br := bufio.NewReader(c)
	var lines []string
	for range 6 {
		line, _ := br.ReadString('\n')
		lines = append(lines, strings.TrimRight(line, "\r\n"))
	}
	if want := []string{"+PONG", "+OK", "+OK", "+OK", "+FULLRESYNC " + s.ReplID + " 7", "$EOF:"}; strings.Join(lines[:5], "|") != strings.Join(want[:5], "|") || !strings.HasPrefix(lines[5], want[5]) {
		t.Errorf("replies %q", lines)
	}
	mark := strings.TrimPrefix(lines[5], "$EOF:")
	rest := make([]byte, len("REDIS0010payload")+40)
	if _, err := io.ReadFull(br, rest); err != nil || string(rest) != "REDIS0010payload"+mark {
		t.Errorf("payload %q, %v; want the RDB and the mark %s", rest, err, mark)
	}
	c.Close()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Error("Done not closed after the replica left")
	}
	s.Close()
}

func TestAccept_NoEOFCapa(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		_, err := Accept(t.Context(), l, Options{Token: "tok"})
		done <- err
	}()
	got := replicaSays(t, l.Addr().String(), 3, []string{"AUTH", "tok"}, []string{"SYNC"})
	if len(got) != 2 || !strings.HasPrefix(got[1], "-ERR") {
		t.Errorf("SYNC without capa eof: %q", got)
	}
	if err := <-done; !errors.Is(err, ErrNoEOFCapa) {
		t.Errorf("Accept: %v, want ErrNoEOFCapa", err)
	}
}

func TestAccept_ContextEnds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := Accept(ctx, l, Options{Token: "tok"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Accept: %v, want the context's error", err)
	}
}

// fakeConn reads in, then EOF; writes are discarded.
type fakeConn struct {
	net.Conn // nil: the methods not overridden are never called
	in       *bytes.Reader
}

func (c *fakeConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzHandshake feeds arbitrary bytes as a replica's handshake: it must
// never panic, and only the token opens PSYNC.
func FuzzHandshake(f *testing.F) {
	f.Add([]byte("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nAUTH\r\n$3\r\ntok\r\n*3\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n"))
	f.Add([]byte("*2\r\n$4\r\nAUTH\r\n$3\r\nbad\r\n"))
	f.Add([]byte("PING\r\n"))
	f.Add([]byte("*99999999\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := handshake(t.Context(), &fakeConn{in: bytes.NewReader(in)}, Options{Token: "tok", Timeout: time.Second})
		if err == nil {
			if !bytes.Contains(in, []byte("tok")) {
				t.Fatalf("PSYNC accepted without the token: %q", in)
			}
			s.Close()
		}
	})
}
