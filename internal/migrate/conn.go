package migrate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"redback/internal/redisurl"
	"redback/internal/resp"
)

// conn is one raw connection to the source server.
type conn struct {
	nc   net.Conn
	bw   *bufio.Writer
	br   *bufio.Reader
	rd   *resp.Reader
	addr string
	db   int
	stop func() bool
}

// SourceError is a problem with the source server that stops the
// migration.
type SourceError struct {
	Addr string
	Msg  string
	Err  error
}

func (e *SourceError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("source %s: %s", e.Addr, e.Msg)
	}
	return fmt.Sprintf("source %s: %s: %v", e.Addr, e.Msg, e.Err)
}

func (e *SourceError) Unwrap() error { return e.Err }

func dial(ctx context.Context, u *redisurl.URL, timeout time.Duration) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := u.Dial(dctx)
	if err != nil {
		return nil, &SourceError{Addr: u.Redacted(), Msg: "unreachable", Err: err}
	}
	br := bufio.NewReaderSize(nc, 256<<10)
	c := &conn{nc: nc, bw: bufio.NewWriterSize(nc, 64<<10), br: br, rd: resp.NewReader(br, resp.Options{}), addr: u.Redacted()}
	c.stop = context.AfterFunc(ctx, func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(timeout))
	if pw := u.Password.Reveal(); pw != "" {
		args := []string{"AUTH", pw}
		if u.Username != "" {
			args = []string{"AUTH", u.Username, pw}
		}
		if _, err := c.do(args...); err != nil {
			c.close()
			var re resp.Error
			if errors.As(err, &re) {
				return nil, &SourceError{Addr: c.addr, Msg: "authentication failed (check the password in the URL, $REDISCLI_AUTH or $REDIS_PASSWORD)", Err: re}
			}
			return nil, &SourceError{Addr: c.addr, Msg: "authenticate", Err: err}
		}
	}
	if _, err := c.do("PING"); err != nil {
		c.close()
		return nil, &SourceError{Addr: c.addr, Msg: "PING", Err: err}
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *conn) close() {
	if c.stop != nil {
		c.stop()
	}
	c.nc.Close()
}

// do sends one command and reads its reply; an error reply is a resp.Error.
func (c *conn) do(args ...string) (resp.Value, error) {
	if _, err := c.bw.Write(resp.AppendCommandString(nil, args...)); err != nil {
		return resp.Value{}, err
	}
	if err := c.bw.Flush(); err != nil {
		return resp.Value{}, err
	}
	v, err := c.rd.ReadValue()
	if err == nil {
		if e := v.Err(); e != nil {
			return v, e
		}
	}
	return v, err
}

// line reads one reply line without "\r\n" (valid until the next read).
func (c *conn) line() ([]byte, error) {
	l, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("reply line longer than %d bytes", c.br.Size())
		}
		return nil, err
	}
	if len(l) < 3 || l[len(l)-2] != '\r' {
		return nil, fmt.Errorf("malformed reply line %q", l)
	}
	l = l[:len(l)-2]
	if l[0] == '-' {
		return nil, resp.Error(l[1:])
	}
	return l, nil
}

// expectStatus reads a "+WANT" reply.
func (c *conn) expectStatus(want string) error {
	l, err := c.line()
	if err != nil {
		return err
	}
	if l[0] != '+' || string(l[1:]) != want {
		return fmt.Errorf("unexpected reply %q (want +%s)", l, want)
	}
	return nil
}

// header reads a reply header of kind ('*', '$', ':') and returns its number.
func (c *conn) header(kind byte) (int64, error) {
	l, err := c.line()
	if err != nil {
		return 0, err
	}
	if l[0] != kind {
		return 0, fmt.Errorf("unexpected reply %q (want %c)", l, kind)
	}
	return strconv.ParseInt(string(l[1:]), 10, 64)
}

// bulkInto appends a bulk reply to buf; nil reports a null bulk.
func (c *conn) bulkInto(buf []byte, max int64) (out []byte, null bool, err error) {
	n, err := c.header('$')
	if err != nil {
		return buf, false, err
	}
	if n < 0 {
		return buf, true, nil
	}
	if n > max {
		return buf, false, fmt.Errorf("bulk of %d bytes exceeds the limit %d", n, max)
	}
	start := len(buf)
	buf = grow(buf, int(n)+2)
	if _, err := io.ReadFull(c.br, buf[start:start+int(n)+2]); err != nil {
		return buf[:start], false, err
	}
	if buf[start+int(n)] != '\r' || buf[start+int(n)+1] != '\n' {
		return buf[:start], false, errors.New("bulk reply not terminated by CRLF")
	}
	return buf[:start+int(n)], false, nil
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

// info is what migrate needs from the source's INFO.
type info struct {
	version string
	cluster bool
	dbs     map[int]int64
}

func (c *conn) info() (info, error) {
	in := info{dbs: map[int]int64{}}
	v, err := c.do("INFO")
	if err != nil {
		return in, &SourceError{Addr: c.addr, Msg: "INFO", Err: err}
	}
	for _, line := range strings.Split(string(v.Str), "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch {
		case k == "redis_version":
			in.version = val
		case k == "cluster_enabled":
			in.cluster = val == "1"
		case strings.HasPrefix(k, "db"):
			db, err := strconv.Atoi(k[2:])
			if err != nil {
				continue
			}
			keys, _, _ := strings.Cut(val, ",")
			if n, ok := strings.CutPrefix(keys, "keys="); ok {
				in.dbs[db], _ = strconv.ParseInt(n, 10, 64)
			}
		}
	}
	return in, nil
}
