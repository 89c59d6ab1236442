package digest

import (
	"encoding/hex"
	"testing"
)

func TestUnion(t *testing.T) {
	if got := hex.EncodeToString(clusterConst[:]); got != "aa3098f3aae94baac14e3b8b8dcae989af93f6a2" {
		t.Fatalf("C = %s", got)
	}
	zero := "0000000000000000000000000000000000000000"
	a := "1111111111111111111111111111111111111111"
	if u, _ := Union(zero, a, zero); u != a {
		t.Errorf("one non-empty: %s", u)
	}
	if u, _ := Union(); u != zero {
		t.Errorf("none: %s", u)
	}
	// Two nodes: a ⊕ a ⊕ C = C.
	if u, _ := Union(a, a); u != "aa3098f3aae94baac14e3b8b8dcae989af93f6a2" {
		t.Errorf("two: %s", u)
	}
	if _, err := Union("xyz"); err == nil {
		t.Error("bad digest accepted")
	}
}
