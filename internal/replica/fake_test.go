package replica_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"redback/internal/redisurl"
	"redback/internal/replica"
	"redback/internal/replica/replicatest"
	"redback/internal/resp"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func mustURL(t *testing.T, s string) *redisurl.URL {
	t.Helper()
	u, err := redisurl.Parse(s, redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustURLB(b *testing.B, s string) *redisurl.URL {
	b.Helper()
	u, err := redisurl.Parse(s, redisurl.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return u
}

func dial(t *testing.T, url string, cfg replica.Config) *replica.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, err := replica.Dial(ctx, mustURL(t, url), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// payload returns n random bytes that end with the mark's prefix, to tempt a
// sloppy end-mark detector.
func payload(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b[n-20:], replicatest.EOFMark[:20])
	return b
}

func TestConn_SyncFake(t *testing.T) {
	stream := resp.AppendCommandString(nil, "SELECT", "2")
	stream = resp.AppendCommandString(stream, "SET", "k", "v")
	stream = resp.AppendCommandString(stream, "MULTI")
	stream = resp.AppendCommandString(stream, "INCR", "n")
	stream = resp.AppendCommandString(stream, "EXEC")
	for _, diskless := range []bool{false, true} {
		for _, size := range []int{41, 300 << 10} {
			name := "disk"
			if diskless {
				name = "diskless"
			}
			t.Run(name, func(t *testing.T) {
				data := payload(size)
				p := replicatest.NewPrimary(t, data, replicatest.Options{Diskless: diskless, Offset: 100, Keepalives: 2, Stream: stream})
				c := dial(t, p.URL(), replica.Config{AckInterval: 50 * time.Millisecond})
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				res, err := c.Sync(ctx, replica.Position{})
				if err != nil {
					t.Fatal(err)
				}
				if !res.Full || res.Diskless != diskless || res.Position != (replica.Position{ReplID: strings.Repeat("a", 40), Offset: 100}) || res.Keepalives != 4 {
					t.Fatalf("result %+v", res)
				}
				if !diskless && res.Size != int64(size) || diskless && res.Size != -1 {
					t.Fatalf("size %d", res.Size)
				}
				got, err := io.ReadAll(res.RDB)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("payload: got %d bytes, want %d (equal prefix: %v)", len(got), len(data), bytes.HasPrefix(data, got))
				}
				var cmds []replica.Command
				for i := 0; i < 5; i++ {
					cmd, err := c.Next(ctx)
					if err != nil {
						t.Fatal(err)
					}
					cmds = append(cmds, cmd)
					if i == 3 && c.Position().Offset != cmds[1].End() {
						t.Fatalf("position inside MULTI moved to %d", c.Position().Offset)
					}
				}
				if end := cmds[4].End(); end != 100+int64(len(stream)) || c.Position().Offset != end {
					t.Fatalf("end %d position %v, want %d", end, c.Position(), 100+len(stream))
				}
				if cmds[1].DB != 2 || cmds[3].DB != 2 || cmds[0].Offset != 100 {
					t.Fatalf("commands %+v", cmds)
				}
				c.SetAckOffset(7)
				deadline := time.Now().Add(10 * time.Second)
				for !hasAck(p.Commands(), "7") && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if !hasAck(p.Commands(), "7") {
					t.Fatalf("no ACK 7 in %v", p.Commands())
				}
			})
		}
	}
}

func hasAck(cmds [][]string, off string) bool {
	for _, c := range cmds {
		if len(c) == 3 && c[0] == "REPLCONF" && c[1] == "ACK" && c[2] == off {
			return true
		}
	}
	return false
}

func TestConn_SyncErrors(t *testing.T) {
	tests := []struct {
		name  string
		opts  replicatest.Options
		check func(error) bool
		want  string
	}{
		{"renamed psync", replicatest.Options{PSYNCReply: "-ERR unknown command 'PSYNC', with args beginning with: '?' '-1' "},
			func(err error) bool { return errors.Is(err, replica.ErrReplicationRefused) }, "bgsave"},
		{"loading", replicatest.Options{PSYNCReply: "-LOADING Redis is loading the dataset in memory"},
			func(err error) bool { var re *replica.RetryableError; return errors.As(err, &re) }, "retry later"},
		{"nomasterlink", replicatest.Options{PSYNCReply: "-NOMASTERLINK Can't SYNC while not connected with my master"},
			func(err error) bool { var re *replica.RetryableError; return errors.As(err, &re) }, "NOMASTERLINK"},
		{"bgsave failed", replicatest.Options{AbortReply: "-ERR BGSAVE failed, replication can't continue", Keepalives: 1},
			func(err error) bool { return errors.Is(err, replica.ErrSyncAborted) }, "BGSAVE failed"},
		{"garbage", replicatest.Options{PSYNCReply: "+WHAT"},
			func(err error) bool { return err != nil }, "unexpected reply"},
		{"closed", replicatest.Options{PSYNCReply: "\n", CloseAfterPayload: true},
			func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }, "PSYNC reply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := replicatest.NewPrimary(t, []byte("x"), tt.opts)
			c := dial(t, p.URL(), replica.Config{})
			_, err := c.Sync(t.Context(), replica.Position{})
			if !tt.check(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if _, err := c.Next(t.Context()); err == nil {
				t.Fatal("Next after a failed Sync succeeded")
			}
		})
	}
}

func TestConn_TruncatedPayload(t *testing.T) {
	for _, hdr := range []string{"$100\r\nabc", "$EOF:" + replicatest.EOFMark + "\r\nabc"} {
		p := replicatest.NewPrimary(t, nil, replicatest.Options{
			PSYNCReply: "+FULLRESYNC " + strings.Repeat("b", 40) + " 5", Stream: []byte(hdr), CloseAfterPayload: true})
		c := dial(t, p.URL(), replica.Config{})
		res, err := c.Sync(t.Context(), replica.Position{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(res.RDB)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%q: err %v", hdr[:4], err)
		}
	}
}

func TestConn_Continue(t *testing.T) {
	stream := resp.AppendCommandString(nil, "SET", "a", "1")
	newID := strings.Repeat("c", 40)
	p := replicatest.NewPrimary(t, nil, replicatest.Options{PSYNCReply: "+CONTINUE " + newID, Stream: stream})
	c := dial(t, p.URL(), replica.Config{})
	c.SetDB(4)
	res, err := c.Sync(t.Context(), replica.Position{ReplID: strings.Repeat("b", 40), Offset: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Full || res.RDB != nil || res.NewReplID != newID || res.Position != (replica.Position{ReplID: newID, Offset: 1000}) {
		t.Fatalf("result %+v", res)
	}
	cmd, err := c.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Offset != 1000 || cmd.DB != 4 || c.Position().Offset != 1000+int64(len(stream)) {
		t.Fatalf("cmd %+v position %v", cmd, c.Position())
	}
	got := p.Commands()
	found := false
	for _, cm := range got {
		if cm[0] == "PSYNC" && cm[1] == strings.Repeat("b", 40) && cm[2] == "1001" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no PSYNC <id> 1001 in %v", got)
	}
}

func TestDial_Auth(t *testing.T) {
	const pw = "correct-horse"
	p := replicatest.NewPrimary(t, []byte("x"), replicatest.Options{Username: "backup", Password: pw})
	ctx := t.Context()
	for _, tt := range []struct{ url, want string }{
		{"redis://" + p.Addr(), "requires a password"},
		{"redis://backup:wrong-battery@" + p.Addr(), "WRONGPASS"},
		{"redis://:wrong-battery@" + p.Addr(), "as user default"},
	} {
		_, err := replica.Dial(ctx, mustURL(t, tt.url), replica.Config{})
		if !errors.Is(err, replica.ErrAuth) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "battery") {
			t.Fatalf("%s: err %v", tt.url, err)
		}
	}
	c := dial(t, "redis://backup:"+pw+"@"+p.Addr(), replica.Config{RDBOnly: true})
	if !c.RDBOnly() {
		t.Fatal("rdb-only not accepted")
	}
	for _, cm := range p.Commands() {
		if strings.Contains(strings.Join(cm, " "), pw) {
			t.Fatal("fake primary recorded the password")
		}
	}
}

func TestDial_RDBOnlyRejected(t *testing.T) {
	p := replicatest.NewPrimary(t, []byte("x"), replicatest.Options{RejectRDBOnly: true})
	c := dial(t, p.URL(), replica.Config{RDBOnly: true})
	if c.RDBOnly() {
		t.Fatal("RDBOnly true after rejection")
	}
}

func TestDial_Unreachable(t *testing.T) {
	u := mustURL(t, "redis://:pw-secret@127.0.0.1:1")
	_, err := replica.Dial(t.Context(), u, replica.Config{})
	if err == nil || !strings.Contains(err.Error(), "connect to redis://:xxxxx@127.0.0.1:1") || strings.Contains(err.Error(), "pw-secret") {
		t.Fatalf("err %v", err)
	}
}

func TestConn_ContextCancel(t *testing.T) {
	p := replicatest.NewPrimary(t, nil, replicatest.Options{PSYNCReply: "+CONTINUE"})
	c := dial(t, p.URL(), replica.Config{})
	if _, err := c.Sync(t.Context(), replica.Position{ReplID: "x", Offset: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Next(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}
