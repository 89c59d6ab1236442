package replica_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/redistest"
	"redback/internal/replica"
)

// crc64Jones is Redis' CRC-64 (reflected poly 0xad93d23594c935a9, init 0),
// enough to check a received RDB without the rdb package.
func crc64Jones(b []byte) uint64 {
	const poly = 0x95ac9329ac4bc9b5 // reflected 0xad93d23594c935a9
	var crc uint64
	for _, x := range b {
		crc ^= uint64(x)
		for i := 0; i < 8; i++ {
			if crc&1 == 1 {
				crc = crc>>1 ^ poly
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

func checkRDB(t *testing.T, b []byte) {
	t.Helper()
	if len(b) < 18 || string(b[:9]) != "REDIS0010" {
		t.Fatalf("RDB header %q (len %d)", b[:min(len(b), 9)], len(b))
	}
	if b[len(b)-9] != 0xFF {
		t.Fatalf("no EOF opcode before the checksum")
	}
	if got, want := crc64Jones(b[:len(b)-8]), binary.LittleEndian.Uint64(b[len(b)-8:]); got != want {
		t.Fatalf("RDB CRC %016x, trailer says %016x", got, want)
	}
}

func replOffset(t *testing.T, s *redistest.Server) int64 {
	t.Helper()
	info, err := s.Client().Info(t.Context(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	return infoField(t, info, "master_repl_offset")
}

func infoField(t *testing.T, info, name string) int64 {
	t.Helper()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in INFO:\n%s", name, info)
	return 0
}

// readUntil reads commands until Position reaches target.
func readUntil(t *testing.T, c *replica.Conn, target int64, logs ...*redistest.Server) []replica.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var cmds []replica.Command
	for i := 0; i < 10000 && c.Position().Offset < target; i++ {
		cmd, err := c.Next(ctx)
		if err != nil {
			for _, s := range logs {
				t.Log(s.Log())
			}
			t.Fatalf("after %d commands at %v (target %d): %v", len(cmds), c.Position(), target, err)
		}
		if len(cmds) > 0 && cmd.Offset != cmds[len(cmds)-1].End() {
			t.Fatalf("gap: %+v after %+v", cmd, cmds[len(cmds)-1])
		}
		cmds = append(cmds, cmd)
	}
	if c.Position().Offset != target {
		t.Fatalf("position %v, want offset %d", c.Position(), target)
	}
	return cmds
}

// waitOnline waits until the primary lists a replica as online: until its
// fork child was reaped, a FLUSHALL kills the child and aborts the sync
// ("SYNC failed. BGSAVE child returned an error").
func waitOnline(t *testing.T, s *redistest.Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		info, err := s.Client().Info(t.Context(), "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "state=online") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("replica not online; log:\n%s", s.Log())
}

func names(cmds []replica.Command) string {
	var b strings.Builder
	for _, c := range cmds {
		b.WriteString(strings.ToLower(string(bytes.Join(c.Args, []byte(" ")))))
		b.WriteString("@" + strconv.Itoa(c.DB) + "\n")
	}
	return b.String()
}

func fullSync(t *testing.T, s *redistest.Server, cfg replica.Config, wantDiskless bool) (*replica.Conn, *replica.SyncResult) {
	t.Helper()
	c := dial(t, s.URL(), cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := c.Sync(ctx, replica.Position{})
	if err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, s.Log())
	}
	if !res.Full || res.Diskless != wantDiskless || len(res.Position.ReplID) != 40 {
		t.Fatalf("result %+v", res)
	}
	b, err := io.ReadAll(res.RDB)
	if err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, s.Log())
	}
	if res.Size >= 0 && int64(len(b)) != res.Size {
		t.Fatalf("read %d bytes, header said %d", len(b), res.Size)
	}
	checkRDB(t, b)
	return c, res
}

func TestConn_RedisDiskSync(t *testing.T) {
	s := redistest.Start(t, "--repl-diskless-sync", "no")
	if err := s.Client().Set(t.Context(), "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c, res := fullSync(t, s, replica.Config{}, false)
	if res.Size <= 0 {
		t.Fatalf("size %d", res.Size)
	}
	if err := s.Client().Set(t.Context(), "after", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cmds := readUntil(t, c, replOffset(t, s), s)
	if !strings.Contains(names(cmds), "set after 2@0") {
		t.Fatalf("stream:\n%s", names(cmds))
	}
}

func TestConn_RedisRDBOnly(t *testing.T) {
	// A 2 s diskless delay: the primary sends a "\n" keepalive per second
	// while it waits, which SyncResult reports.
	s := redistest.Start(t, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "2")
	if err := s.Client().Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c, res := fullSync(t, s, replica.Config{RDBOnly: true}, true)
	if !c.RDBOnly() {
		t.Fatal("rdb-only not accepted by 7.0")
	}
	if res.Keepalives == 0 || res.WaitedBeforePayload <= 0 {
		t.Fatalf("keepalives %d, waited %v", res.Keepalives, res.WaitedBeforePayload)
	}
	if _, err := c.Next(t.Context()); err != io.EOF {
		t.Fatalf("Next in rdb-only mode: %v", err)
	}
}

func TestConn_RedisStream(t *testing.T) {
	s := redistest.Start(t, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
	ctx := t.Context()
	cl := s.Client()
	if err := cl.Set(ctx, "seed", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c, res := fullSync(t, s, replica.Config{}, true)
	if res.Size != -1 {
		t.Fatalf("size %d", res.Size)
	}
	waitOnline(t, s)

	// Writes of every shape.
	db3 := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: 3, DisableIdentity: true})
	defer db3.Close()
	if err := cl.Set(ctx, "a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "t1", "1", 0)
		p.Incr(ctx, "t2")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db3.Set(ctx, "b", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := db3.Eval(ctx, "redis.call('set', KEYS[1], '1'); return redis.call('incr', KEYS[1])", []string{"e"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := cl.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	target := replOffset(t, s)
	cmds := readUntil(t, c, target, s)
	got := names(cmds)
	for _, want := range []string{"set a 1@0", "multi@0\nset t1 1@0\nincr t2@0\nexec@0", "select 3@3\nset b 2@3", "multi@3\nset e 1@3\nincr e@3\nexec@3", "flushall@"} {
		if !strings.Contains(got, want) {
			t.Fatalf("stream lacks %q:\n%s", want, got)
		}
	}

	// The primary sees our ACK of the final offset.
	deadline := time.Now().Add(10 * time.Second)
	var acked int64
	for time.Now().Before(deadline) {
		info, err := cl.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.Index(info, "slave0:"); i >= 0 {
			line := info[i:]
			line = line[:strings.Index(line, "\r\n")]
			if j := strings.Index(line, "offset="); j >= 0 {
				f := strings.SplitN(line[j+7:], ",", 2)[0]
				acked, _ = strconv.ParseInt(f, 10, 64)
				if acked == target {
					break
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if acked != target {
		t.Fatalf("primary shows ACK %d, want %d", acked, target)
	}

	// WAIT makes the primary send GETACK; we answer it while reading.
	if err := cl.Set(ctx, "w", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan int64, 1)
	go func() {
		n, err := cl.Do(ctx, "WAIT", 1, 5000).Int64()
		if err != nil {
			n = -1
		}
		waited <- n
	}()
	sawGetack := false
	nctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for i := 0; i < 100 && !sawGetack; i++ {
		cmd, err := c.Next(nctx)
		if err != nil {
			t.Fatal(err)
		}
		sawGetack = strings.EqualFold(string(cmd.Args[0]), "REPLCONF") && strings.EqualFold(string(cmd.Args[1]), "GETACK")
	}
	if n := <-waited; n != 1 || !sawGetack {
		t.Fatalf("WAIT returned %d (saw GETACK: %v)", n, sawGetack)
	}
	pos := c.Position()
	if pos.Offset != replOffset(t, s) {
		t.Fatalf("position %v, primary at %d", pos, replOffset(t, s))
	}

	// Kill the link, write more, and resume with PSYNC <id> <offset+1>.
	if err := cl.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(nctx); err == nil {
		t.Fatal("Next after CLIENT KILL succeeded")
	}
	c.Close()
	if err := cl.Set(ctx, "resumed", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, s.URL(), replica.Config{})
	res2, err := c2.Sync(nctx, pos)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Full || res2.Position != pos {
		t.Fatalf("resume: %+v", res2)
	}
	cmds = readUntil(t, c2, replOffset(t, s), s)
	if cmds[0].Offset != pos.Offset {
		t.Fatalf("first resumed command at %d, want %d", cmds[0].Offset, pos.Offset)
	}
	got = names(cmds)
	if !strings.Contains(got, "set resumed 1@0") || strings.Contains(got, "set w 1") {
		t.Fatalf("resumed stream:\n%s", got)
	}
}

func TestConn_RedisRenamedPSYNC(t *testing.T) {
	s := redistest.Start(t, "--rename-command", "PSYNC", "", "--rename-command", "SYNC", "")
	c := dial(t, s.URL(), replica.Config{})
	_, err := c.Sync(t.Context(), replica.Position{})
	if !errors.Is(err, replica.ErrReplicationRefused) || !strings.Contains(err.Error(), "not allowed") || !strings.Contains(err.Error(), "--method bgsave") {
		t.Fatalf("err %v", err)
	}
}

func TestDial_RedisAuth(t *testing.T) {
	const pw = "s3cret-staple"
	s := redistest.Start(t)
	// redistest waits for +PONG, so the password is set once it runs.
	if err := s.Client().ConfigSet(t.Context(), "requirepass", pw).Err(); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{s.URL(), "redis://:wrong-staple@" + s.Addr()} {
		_, err := replica.Dial(t.Context(), mustURL(t, url), replica.Config{})
		if !errors.Is(err, replica.ErrAuth) || strings.Contains(err.Error(), "staple") {
			t.Fatalf("%s: err %v", url, err)
		}
	}
	c := dial(t, "redis://:"+pw+"@"+s.Addr(), replica.Config{RDBOnly: true})
	res, err := c.Sync(t.Context(), replica.Position{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, res.RDB); err != nil {
		t.Fatal(err)
	}
}
