package pitr_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/pitr/pitrtest"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/resp"
	"redback/internal/restore"
	"redback/internal/snapshot"
	"redback/internal/storage/mem"
)

// TestReplay_Rate compares the replay rate with `redis-cli --pipe` on the
// same commands. It only logs the rates (no timing assertion); run it with
// REDBACK_RATE=1.
func TestReplay_Rate(t *testing.T) {
	if os.Getenv("REDBACK_RATE") != "1" {
		t.Skip("set REDBACK_RATE=1 to compare the replay rate with redis-cli --pipe")
	}
	cli := redistest.Tool(t, "redis-cli")
	ctx := t.Context()
	const n = 300000
	src := redistest.Start(t)
	if err := src.Client().Do(ctx, "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	rdb, err := os.ReadFile(filepath.Join(src.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	b := mem.New()
	gen := catalog.NewGenerationID(time.Now(), "rate")
	base, err := snapshot.Store(ctx, bytes.NewReader(rdb), snapshot.Options{Backend: b, Method: "ship", Generation: gen})
	if err != nil {
		t.Fatal(err)
	}
	cmds := make([]pitrtest.Cmd, 0, n)
	var raw []byte
	off := int64(0)
	ms := base.EndTime.UnixMilli() + 1
	for i := range n {
		args := [][]byte{[]byte("SET"), []byte("key:" + strconv.Itoa(i%50000)), bytes.Repeat([]byte{'v'}, 32)}
		c := pitrtest.Cmd{Args: args, Offset: off, Ms: ms + int64(i/1000)}
		off += c.Len()
		cmds = append(cmds, c)
		raw = resp.AppendCommand(raw, args...)
	}
	var split []int
	for i := 50000; i < n; i += 50000 {
		split = append(split, i)
	}
	if _, err := pitrtest.Write(ctx, b, pitrtest.Generation{ID: gen, ReplID: "rate", BaseSnapshot: base.ID, Cmds: cmds, SplitAt: split}); err != nil {
		t.Fatal(err)
	}
	p, err := pitr.NewPlan(ctx, b, pitr.AtOffset(off), pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := redistest.Start(t)
	u, _ := redisurl.Parse(a.URL(), redisurl.Options{})
	res, err := p.ToRedis(ctx, u, restore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	replay := res.Replay
	t.Logf("replay: %d commands in %v (%.0f/s; with the base restore %v)", res.Commands, replay, float64(res.Commands)/replay.Seconds(), res.Duration)

	c := redistest.Start(t)
	cmd := exec.CommandContext(ctx, cli, "-p", strconv.Itoa(c.Port), "--pipe")
	cmd.Stdin = bytes.NewReader(raw)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --pipe: %v %s", err, out)
	}
	pipe := time.Since(start)
	t.Logf("redis-cli --pipe: %d commands in %v (%.0f/s)", n, pipe, float64(n)/pipe.Seconds())
	if a.Digest(ctx) != c.Digest(ctx) {
		t.Error("digests differ")
	}
}
