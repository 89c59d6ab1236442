package respconn

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/resp"
)

func parse(t *testing.T, s string) *redisurl.URL {
	t.Helper()
	u, err := redisurl.Parse(s, redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDialDoRead(t *testing.T) {
	ctx := t.Context()
	s := redistest.Start(t)
	c, err := Dial(ctx, parse(t, s.URL()), Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Addr() != "redis://"+s.Addr() || c.DB != 0 {
		t.Errorf("Addr %q DB %d", c.Addr(), c.DB)
	}
	if v, err := c.Do("SET", "k", "v"); err != nil || v.Text() != "OK" {
		t.Fatalf("SET: %v %+v", err, v)
	}
	// An error reply is a resp.Error; the connection stays usable.
	_, err = c.Do("INCR", "k")
	var re resp.Error
	if !errors.As(err, &re) || re.Code() != "ERR" {
		t.Errorf("INCR of a string: %v", err)
	}

	// Pipelined: two commands through Writer, replies through ReadOK and
	// Reader.
	w := c.Writer()
	w.Write(resp.AppendCommandString(nil, "SET", "a", "1"))
	w.Write(resp.AppendCommandString(nil, "GET", "a"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !c.ReadOK() {
		t.Fatal("ReadOK after SET: false")
	}
	if c.ReadOK() {
		t.Fatal("ReadOK of a bulk reply: true")
	}
	if v, err := c.Reader().ReadValue(); err != nil || v.Text() != "1" {
		t.Fatalf("GET after ReadOK: %v %+v", err, v)
	}
	// Raw reads interleave with Reader between replies.
	w.Write(resp.AppendCommandString(nil, "PING"))
	w.Flush()
	if l, err := c.Raw().ReadString('\n'); err != nil || l != "+PONG\r\n" {
		t.Fatalf("raw PONG: %q %v", l, err)
	}

	in, err := c.Info()
	if err != nil || in.Version == "" || in.Keys[0] != 2 || in.Cluster || in.Replica {
		t.Errorf("Info: %v %+v", err, in)
	}
}

func TestDialClosesWithContext(t *testing.T) {
	s := redistest.Start(t)
	ctx, cancel := context.WithCancel(t.Context())
	c, err := Dial(ctx, parse(t, s.URL()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Do("PING"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection still answers after ctx ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Close() // a second close is harmless
}

func TestDialErrors(t *testing.T) {
	ctx := t.Context()
	u := parse(t, "redis://127.0.0.1:"+strconv.Itoa(redistest.FreePort(t)))
	_, err := Dial(ctx, u, Options{Timeout: 2 * time.Second})
	var de *ServerError
	if !errors.As(err, &de) || de.Msg != MsgUnreachable || de.Addr != u.Redacted() || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("unreachable: %v", err)
	}

	const pw = "s3cret-pw"
	s := redistest.Start(t, "--requirepass", pw)

	// No password: the NOAUTH reply to PING gets the hint.
	_, err = Dial(ctx, parse(t, s.URL()), Options{})
	if !errors.As(err, &de) || de.Msg != MsgNoAuth || !strings.Contains(err.Error(), "the server requires a password: put it in the URL (redis://:PASSWORD@host:port) or in $REDISCLI_AUTH") {
		t.Errorf("no password: %v", err)
	}
	var re resp.Error
	if !errors.As(err, &re) || re.Code() != "NOAUTH" {
		t.Errorf("no password: the server's reply is not wrapped: %v", err)
	}

	// A wrong password: the message says where to fix it and never holds it.
	for _, bad := range []string{"redis://:wrong-pw@", "redis://someone:wrong-pw@"} {
		_, err = Dial(ctx, parse(t, bad+s.Addr()), Options{})
		if !errors.As(err, &de) || de.Msg != MsgAuthFailed || !strings.Contains(err.Error(), "authentication failed (check the password in the URL, $REDISCLI_AUTH or $REDIS_PASSWORD)") {
			t.Errorf("wrong password %s: %v", bad, err)
		}
		if err != nil && (strings.Contains(err.Error(), "wrong-pw") || strings.Contains(fmt.Sprintf("%+v %#v", err, err), "wrong-pw")) {
			t.Errorf("the password is in the message: %v", err)
		}
		if !errors.As(err, &re) || (re.Code() != "WRONGPASS" && re.Code() != "ERR") {
			t.Errorf("wrong password: the server's reply is not wrapped: %v", err)
		}
	}

	// The right password, alone and with the default user (AUTH user pw).
	for _, good := range []string{"redis://:" + pw + "@", "redis://default:" + pw + "@"} {
		c, err := Dial(ctx, parse(t, good+s.Addr()), Options{})
		if err != nil {
			t.Fatalf("right password: %v", err)
		}
		if v, err := c.Do("PING"); err != nil || v.Text() != "PONG" {
			t.Errorf("PING after AUTH: %v %+v", err, v)
		}
		if strings.Contains(c.Addr(), pw) {
			t.Errorf("Addr holds the password: %s", c.Addr())
		}
		c.Close()
	}

	// Options.Error builds the caller's own error.
	_, err = Dial(ctx, parse(t, s.URL()), Options{Error: func(addr, msg string, err error) error {
		return fmt.Errorf("mine %s [%s]: %w", addr, msg, err)
	}})
	if err == nil || !strings.HasPrefix(err.Error(), "mine "+s.URL()+" ["+MsgNoAuth+"]: NOAUTH") || errors.As(err, &de) {
		t.Errorf("Options.Error: %v", err)
	}
}

func TestParseInfo(t *testing.T) {
	text := "# Server\r\nredis_version:7.2.4\r\n# Replication\r\nrole:slave\r\nmaster_host:10.0.0.5\r\nmaster_port:6380\r\n" +
		"# Cluster\r\ncluster_enabled:0\r\n# Keyspace\r\ndb0:keys=12,expires=1,avg_ttl=0\r\ndb3:keys=4,expires=0,avg_ttl=0\r\ndbx:keys=1\r\n"
	in := ParseInfo(text)
	if in.Version != "7.2.4" || !in.Replica || in.PrimaryAddr != "10.0.0.5:6380" || in.Cluster || len(in.Keys) != 2 || in.Keys[0] != 12 || in.Keys[3] != 4 {
		t.Errorf("ParseInfo: %+v", in)
	}
	in = ParseInfo("role:master\r\ncluster_enabled:1\r\n")
	if in.Replica || in.PrimaryAddr != "" || !in.Cluster || in.Keys == nil || len(in.Keys) != 0 {
		t.Errorf("ParseInfo of a primary: %+v", in)
	}
}
