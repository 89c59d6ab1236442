package redistest

import (
	"testing"
)

func TestStart(t *testing.T) {
	s := Start(t)
	ctx := t.Context()
	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if d := s.Digest(ctx); len(d) != 40 || d == "0000000000000000000000000000000000000000" {
		t.Fatalf("digest %q", d)
	}
	s.Restart()
	if n, err := s.Client().DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("after restart without save: dbsize %d, %v", n, err)
	}
}

func TestEachServer(t *testing.T) {
	EachServer(t, func(t *testing.T, b Bin) {
		s := StartBin(t, b)
		n := PopulateAll(t, s, 20)
		if got, err := s.Client().DBSize(t.Context()).Result(); err != nil || got == 0 || n == 0 {
			t.Fatalf("dbsize %d %v, populated %d", got, err, n)
		}
		if ttls := FieldTTLs(t, s); b.HashFieldTTL() != (len(ttls) == 6) {
			t.Fatalf("%s: field TTLs on %d hashes", b.Name(), len(ttls))
		}
	})
}
