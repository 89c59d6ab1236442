package migrate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"redback/internal/redisurl"
	"redback/internal/resp"
	"redback/internal/respconn"
)

// conn is one raw connection to the source server, with the reply
// parsing migrate does itself.
type conn struct{ *respconn.Conn }

// dial connects to the source, authenticates and checks the server
// answers; its errors are *respconn.ServerError (RoleSource). The connection is closed when ctx
// ends.
func dial(ctx context.Context, u *redisurl.URL, timeout time.Duration) (*conn, error) {
	c, err := respconn.Dial(ctx, u, respconn.Options{Timeout: timeout, ReadBuffer: 256 << 10, Role: respconn.RoleSource})
	if err != nil {
		return nil, err
	}
	return &conn{c}, nil
}

// line reads one reply line without "\r\n" (valid until the next read).
func (c *conn) line() ([]byte, error) {
	l, err := c.Raw().ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("reply line longer than %d bytes", c.Raw().Size())
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
	if _, err := io.ReadFull(c.Raw(), buf[start:start+int(n)+2]); err != nil {
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

// info reads the source's INFO.
func (c *conn) info() (respconn.Info, error) {
	in, err := c.Info()
	if err != nil {
		return in, &respconn.ServerError{Role: respconn.RoleSource, Addr: c.Addr(), Msg: "INFO", Err: err}
	}
	return in, nil
}
