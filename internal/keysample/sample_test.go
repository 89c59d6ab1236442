package keysample

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/digest"
	"redback/internal/rdb"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/respconn"
)

// TestCheck, on every server build: a sample of all the keys of a
// server's own RDB (every type and encoding the build writes, hash-field
// TTLs included where it has them) reads back equal by DUMP and
// PEXPIRETIME, key counts included; a deleted key and a changed value are
// each named as a mismatch.
func TestCheck(t *testing.T) {
	redistest.EachServer(t, testCheck)
}

func testCheck(t *testing.T, b redistest.Bin) {
	srv := redistest.StartBin(t, b)
	keys := redistest.PopulateAll(t, srv, 200)
	ctx := t.Context()
	if err := srv.Client().Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(srv.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := rdb.NewReader(f, rdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := New(1<<20, digest.Score70)
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Offer(rec.DB, rec); err != nil {
			t.Fatal(err)
		}
	}
	u, err := redisurl.Parse(srv.URL(), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := respconn.Dial(context.Background(), u, respconn.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := func() int64 { return time.Now().UnixMilli() }
	r, err := s.Check(c, 10*time.Second, now, true)
	if err != nil || r.Checked != keys || r.Mismatched != 0 {
		t.Fatalf("undamaged: %+v %v", r, err)
	}
	// Damage two sampled keys of db 0.
	var picked []Key
	for _, k := range s.Keys() {
		if k.DB == 0 && len(picked) < 2 {
			picked = append(picked, k)
		}
	}
	if len(picked) < 2 {
		t.Fatal("fewer than 2 sampled keys in db 0")
	}
	if err := srv.Client().Del(ctx, picked[0].Key).Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().Set(ctx, picked[1].Key, "changed", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r, err = s.Check(c, 10*time.Second, now, true)
	if err != nil || r.Mismatched != 2 {
		t.Fatalf("damaged: %+v %v", r, err)
	}
	sum := r.Summary()
	for _, k := range picked {
		if !strings.Contains(sum, k.Key) {
			t.Errorf("the summary does not name %q: %s", k.Key, sum)
		}
	}
	t.Log(sum)
}
