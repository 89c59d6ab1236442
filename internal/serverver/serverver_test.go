package serverver

import "testing"

func TestReads(t *testing.T) {
	for _, tc := range []struct {
		family, version string
		v               int
		want            bool
	}{
		{"redis", "7.0.15", 10, true}, {"redis", "7.0.15", 11, false},
		{"redis", "7.2.4", 11, true}, {"redis", "7.4.0", 12, true}, {"redis", "8.0.6", 12, true},
		{"redis", "8.0.6", 13, false}, {"redis", "8.6.0", 13, true}, {"redis", "8.6.0", 80, false},
		{"valkey", "8.1.1", 11, true}, {"valkey", "8.1.1", 12, false}, {"valkey", "8.1.1", 80, false},
		{"valkey", "9.1.2", 80, true}, {"valkey", "9.1.2", 81, false}, {"valkey", "9.2.0", 81, true},
		{"valkey", "9.1.2", 12, false},
	} {
		if got := (Build{Family: tc.family, Version: tc.version}).Reads(tc.v); got != tc.want {
			t.Errorf("%s %s reads RDB %d: %v, want %v", tc.family, tc.version, tc.v, got, tc.want)
		}
	}
}
