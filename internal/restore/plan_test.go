package restore

import (
	"errors"
	"testing"

	"redback/internal/rdb"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pat, key string
		want     bool
	}{
		{"*", "", true},
		{"*", "abc", true},
		{"user:*", "user:1", true},
		{"user:*", "usr:1", false},
		{"h?llo", "hello", true},
		{"h?llo", "hllo", false},
		{"h[ae]llo", "hallo", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[b-a]llo", "hallo", true}, // reversed range
		{"h[a-b]llo", "hcllo", false},
		{`h\*llo`, "h*llo", true},
		{`h\*llo`, "hello", false},
		{`h[\]]llo`, "h]llo", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"a**", "a", true},
		{"abc", "abcd", false},
		{"[abc", "a", true}, // unterminated bracket
		{"*\x00*", "x\x00y", true},
		{"k[\xf0-\xff]", "k\xf5", true},
		{"", "", true},
		{"", "a", false},
	}
	for _, tt := range tests {
		if got := Match([]byte(tt.pat), []byte(tt.key)); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pat, tt.key, got, tt.want)
		}
	}
}

func TestRDBVersionFor(t *testing.T) {
	for v, want := range map[string]int{"7.0.15": 10, "7.2.4": 11, "7.4.0": 12, "8.0.1": 12, "6.2.14": 9, "6.0.0": 9, "5.0.7": 9, "4.0.9": 8} {
		if got, err := RDBVersionFor(v); err != nil || got != want {
			t.Errorf("RDBVersionFor(%q) = %d, %v; want %d", v, got, err, want)
		}
	}
	if _, err := RDBVersionFor("banana"); err == nil {
		t.Error("RDBVersionFor(banana): no error")
	}
}

func TestPlan_Decide(t *testing.T) {
	tgt := Target{Address: "t", RDBVersion: 10, MaxBulkLen: 1000, Databases: 16, Keys: map[int]int64{}}
	f := Filter{Match: []string{"a*"}, DBs: []int{0, 1}}
	p, err := NewPlan(11, []int{0, 1, 2}, tgt, f, ConflictFail)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		db     int
		key    string
		typ    rdb.Type
		expire int64
		size   int64
		want   Action
	}{
		{"filtered by db", 2, "a", rdb.TypeString, -1, 10, ActionFiltered},
		{"filtered by match", 0, "b", rdb.TypeString, -1, 10, ActionFiltered},
		{"expired", 0, "a", rdb.TypeString, 500, 10, ActionExpired},
		{"expire 0 is past", 0, "a", rdb.TypeString, 0, 10, ActionExpired},
		{"newer source, known type", 0, "a", rdb.TypeHashListpack, -1, 10, ActionRewriteFooter},
		{"unknown type", 1, "ab", rdb.TypeSetListpack, 2000, 10, ActionConvert},
		{"too big", 1, "ab", rdb.TypeString, -1, 1001, ActionConvert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Decide(tt.db, []byte(tt.key), tt.typ, tt.expire, tt.size, 1000); got != tt.want {
				t.Errorf("Decide = %v, want %v", got, tt.want)
			}
		})
	}
	p2, _ := NewPlan(10, nil, tgt, Filter{}, ConflictFail)
	if got := p2.Decide(0, []byte("k"), rdb.TypeHashListpack, -1, 10, 0); got != ActionRestore {
		t.Errorf("same version: %v, want restore", got)
	}
}

func TestNewPlan_Refusals(t *testing.T) {
	base := Target{Address: "t", RDBVersion: 10, Databases: 16, Keys: map[int]int64{3: 5, 7: 1}}
	tests := []struct {
		name    string
		t       Target
		srcDBs  []int
		f       Filter
		c       Conflict
		wantErr bool
		confl   bool
	}{
		{"empty target dbs", base, []int{0, 1}, Filter{}, ConflictFail, false, false},
		{"busy db", base, []int{0, 3}, Filter{}, ConflictFail, true, true},
		{"busy db via map", base, []int{0}, Filter{MapDB: map[int]int{0: 7}}, ConflictFail, true, true},
		{"busy db filtered out", base, []int{0, 3}, Filter{DBs: []int{0}}, ConflictFail, false, false},
		{"busy db replace", base, []int{3}, Filter{}, ConflictReplace, false, false},
		{"unknown source dbs", base, nil, Filter{}, ConflictFail, true, true},
		{"unknown source dbs, db filter", base, nil, Filter{DBs: []int{0}}, ConflictFail, false, false},
		{"unknown source dbs, moved away", base, nil, Filter{DBs: []int{3}, MapDB: map[int]int{3: 4}}, ConflictFail, false, false},
		{"db out of range", base, []int{0}, Filter{MapDB: map[int]int{0: 16}}, ConflictReplace, true, false},
		{"cluster", Target{Cluster: true}, nil, Filter{}, ConflictReplace, true, false},
		{"replica", Target{Replica: true, PrimaryAddr: "h:1"}, nil, Filter{}, ConflictReplace, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPlan(10, tt.srcDBs, tt.t, tt.f, tt.c)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			var ce *ConflictError
			if errors.As(err, &ce) != tt.confl {
				t.Fatalf("err = %v, conflict error %v", err, tt.confl)
			}
		})
	}
}

func TestParseMapDB(t *testing.T) {
	if f, to, err := ParseMapDB("0:3"); err != nil || f != 0 || to != 3 {
		t.Errorf("ParseMapDB(0:3) = %d %d %v", f, to, err)
	}
	for _, bad := range []string{"", "3", "a:1", "1:-1", "1:2:3"} {
		if _, _, err := ParseMapDB(bad); err == nil {
			t.Errorf("ParseMapDB(%q): no error", bad)
		}
	}
}
