package aof

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"

	"redback/internal/redistest"
)

// TestWriter_RedisLoads: redis-server loads an incr AOF written by Writer
// and ends with the same DEBUG DIGEST as a server that ran the commands.
func TestWriter_RedisLoads(t *testing.T) {
	type cmd struct {
		db   int
		args []string
	}
	cmds := []cmd{
		{0, []string{"SET", "a", "1"}},
		{0, []string{"SET", "bin", "x\r\n*3\r\n\x00\xff"}},
		{0, []string{"RPUSH", "l", "a", "b", "c"}},
		{2, []string{"SADD", "s", "m1", "m2"}},
		{2, []string{"ZADD", "z", "1.5", "x", "2", "y"}},
		{0, []string{"HSET", "h", "f", "v"}},
		{0, []string{"INCRBY", "n", "41"}},
		{5, []string{"SET", "far", "db5"}},
		{0, []string{"DEL", "a"}},
	}
	dir := t.TempDir()
	aofDir := filepath.Join(dir, "appendonlydir")
	if err := os.Mkdir(aofDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(aofDir, "appendonly.aof.1.incr.aof"))
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(f)
	for i, c := range cmds {
		if i%3 == 0 {
			if err := w.WriteTimestamp(1795520462 + int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		w.SetDB(c.db)
		args := make([][]byte, len(c.args))
		for j, a := range c.args {
			args[j] = []byte(a)
		}
		if err := w.WriteCommand(args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m := &Manifest{Incr: []ManifestFile{{Name: "appendonly.aof.1.incr.aof", Seq: 1, Type: TypeIncr}}}
	mf, err := os.Create(filepath.Join(aofDir, "appendonly.aof.manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteTo(mf); err != nil {
		t.Fatal(err)
	}
	mf.Close()

	// redis-check-aof agrees it is valid.
	if tool := runTool(t, "", filepath.Join(aofDir, "appendonly.aof.manifest")); tool.exit != 0 {
		t.Fatalf("redis-check-aof:\n%s", tool.out)
	}

	loaded := redistest.StartInDir(t, dir, "--appendonly", "yes")
	ref := redistest.Start(t)
	ctx := context.Background()
	for _, c := range cmds {
		cl := redis.NewClient(&redis.Options{Addr: ref.Addr(), DB: c.db, DisableIdentity: true})
		args := make([]any, len(c.args))
		for j, a := range c.args {
			args[j] = a
		}
		if err := cl.Do(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	if got, want := loaded.Digest(ctx), ref.Digest(ctx); got != want || got == "0000000000000000000000000000000000000000" {
		t.Fatalf("digest of loaded AOF %s, reference %s\nlog:\n%s", got, want, loaded.Log())
	}
}
