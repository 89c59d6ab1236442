package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"redback/internal/redisurl"
	"redback/internal/resp"
)

// conn is one raw connection to the target.
type conn struct {
	nc   net.Conn
	bw   *bufio.Writer
	br   *bufio.Reader // under rd
	rd   *resp.Reader
	db   int
	addr string
	stop func() bool
}

// dial connects, authenticates and checks the server answers. The
// connection is closed when ctx ends.
func dial(ctx context.Context, u *redisurl.URL, timeout time.Duration) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := u.Dial(dctx)
	if err != nil {
		return nil, &TargetError{Addr: u.Redacted(), Msg: "unreachable", Err: err}
	}
	br := bufio.NewReaderSize(nc, 64<<10)
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
				// the server's message never echoes the password
				return nil, &TargetError{Addr: c.addr, Msg: "authentication failed (check the password in the URL, $REDISCLI_AUTH or $REDIS_PASSWORD)", Err: re}
			}
			return nil, &TargetError{Addr: c.addr, Msg: "authenticate", Err: err}
		}
	}
	if _, err := c.do("PING"); err != nil {
		c.close()
		var re resp.Error
		if errors.As(err, &re) && re.Code() == "NOAUTH" {
			return nil, &TargetError{Addr: c.addr, Msg: "the server requires a password: put it in the URL (redis://:PASSWORD@host:port) or in $REDISCLI_AUTH", Err: re}
		}
		return nil, &TargetError{Addr: c.addr, Msg: "PING", Err: err}
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
	buf := resp.AppendCommandString(nil, args...)
	if _, err := c.bw.Write(buf); err != nil {
		return resp.Value{}, err
	}
	if err := c.bw.Flush(); err != nil {
		return resp.Value{}, err
	}
	return c.rd.ReadValue()
}

// okReply is the reply of most restore commands.
var okReply = []byte("+OK\r\n")

// readOK consumes a "+OK" reply without allocating and reports whether it
// did; otherwise nothing is consumed.
func (c *conn) readOK() bool {
	p, err := c.br.Peek(len(okReply))
	if err != nil || string(p) != string(okReply) {
		return false
	}
	_, _ = c.br.Discard(len(okReply))
	return true
}

// TargetError is a problem with the target server that stops the restore.
type TargetError struct {
	Addr string
	Msg  string
	Err  error
}

func (e *TargetError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("target %s: %s", e.Addr, e.Msg)
	}
	return fmt.Sprintf("target %s: %s: %v", e.Addr, e.Msg, e.Err)
}

func (e *TargetError) Unwrap() error { return e.Err }

// fatalReply turns an error reply that means "every further write fails
// too" into a TargetError; per-key errors give nil.
func fatalReply(addr string, re resp.Error) error {
	switch re.Code() {
	case "READONLY":
		return &TargetError{Addr: addr, Msg: "the server is a read-only replica: restore into its primary, or run REPLICAOF NO ONE on it first", Err: re}
	case "OOM":
		return &TargetError{Addr: addr, Msg: "the server is out of memory (maxmemory reached): raise maxmemory or free memory, then restore again with --conflict replace", Err: re}
	case "NOAUTH", "WRONGPASS":
		return &TargetError{Addr: addr, Msg: "authentication required", Err: re}
	case "NOPERM":
		return &TargetError{Addr: addr, Msg: "the user lacks a permission restore needs (RESTORE, SELECT, FUNCTION LOAD, and for converted keys the data commands)", Err: re}
	case "LOADING":
		return &TargetError{Addr: addr, Msg: "the server is loading its dataset: wait until INFO persistence shows loading:0", Err: re}
	case "MISCONF":
		return &TargetError{Addr: addr, Msg: "the server refuses writes (its last background save failed)", Err: re}
	case "MASTERDOWN", "MOVED", "ASK", "CROSSSLOT", "CLUSTERDOWN", "TRYAGAIN":
		return &TargetError{Addr: addr, Msg: "the server refused the write", Err: re}
	}
	return nil
}

// probe reads what a Plan needs from INFO and CONFIG GET.
func probe(c *conn) (Target, error) {
	t := Target{Address: c.addr, Keys: map[int]int64{}, MaxBulkLen: 512 << 20, Databases: 16}
	v, err := c.do("INFO")
	if err != nil {
		return t, &TargetError{Addr: c.addr, Msg: "INFO", Err: err}
	}
	for _, line := range strings.Split(string(v.Str), "\n") {
		line = strings.TrimSpace(line)
		k, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case k == "redis_version":
			t.RedisVersion = val
		case k == "cluster_enabled":
			t.Cluster = val == "1"
		case k == "role":
			t.Replica = val == "slave"
		case k == "master_host":
			t.PrimaryAddr = val + t.PrimaryAddr
		case k == "master_port":
			t.PrimaryAddr += ":" + val
		case strings.HasPrefix(k, "db"):
			db, err := strconv.Atoi(k[2:])
			if err != nil {
				continue
			}
			keys, _, _ := strings.Cut(val, ",")
			if n, ok := strings.CutPrefix(keys, "keys="); ok {
				t.Keys[db], _ = strconv.ParseInt(n, 10, 64)
			}
		}
	}
	if t.RDBVersion, err = RDBVersionFor(t.RedisVersion); err != nil {
		return t, &TargetError{Addr: c.addr, Msg: "INFO server", Err: err}
	}
	// CONFIG may be renamed or forbidden (managed services): keep defaults.
	if v, err := c.do("CONFIG", "GET", "proto-max-bulk-len"); err == nil && len(v.Array) == 2 {
		if n, err := strconv.ParseInt(v.Array[1].Text(), 10, 64); err == nil && n > 0 {
			t.MaxBulkLen = n
		}
	}
	if v, err := c.do("CONFIG", "GET", "databases"); err == nil && len(v.Array) == 2 {
		if n, err := strconv.Atoi(v.Array[1].Text()); err == nil && n > 0 {
			t.Databases = n
		}
	}
	return t, nil
}
