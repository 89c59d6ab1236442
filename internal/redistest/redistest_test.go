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
