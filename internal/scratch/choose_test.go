package scratch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeServer writes an executable script named name in dir that prints
// what `NAME --version` prints.
func fakeServer(t *testing.T, dir, name, version string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+version+" sha=00000000:0 malloc=libc bits=64'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestChoose(t *testing.T) {
	dir := t.TempDir()
	r70 := fakeServer(t, dir, "redis-server", "Redis server v=7.0.15")
	r80 := fakeServer(t, dir, "redis-server-8.0", "Redis server v=8.0.6")
	v81 := fakeServer(t, dir, "valkey-server-8.1", "Valkey server v=8.1.1")
	v91 := fakeServer(t, dir, "valkey-server-9.1", "Valkey server v=9.1.2")
	t.Setenv("PATH", dir)
	ctx := t.Context()
	for _, tc := range []struct {
		need Need
		want string
	}{
		{NeedOf(10, "7.0.15", ""), r70},
		{NeedOf(12, "8.0.6", ""), r80},
		{NeedOf(11, "7.2.4", "8.1.1"), v81},
		{NeedOf(11, "7.2.4", ""), r80},
		{NeedOf(80, "7.2.4", "9.1.2"), v91},
		{NeedOf(10, "", ""), r80},
	} {
		b, err := Choose(ctx, "", tc.need)
		if err != nil || b.Path != tc.want {
			t.Errorf("%s: %v %v, want %s", tc.need, b, err, tc.want)
		}
	}
	_, err := Choose(ctx, "", NeedOf(13, "8.6.0", ""))
	if !errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), "redis 8.6 or later") || !strings.Contains(err.Error(), "valkey 9.1.2") {
		t.Errorf("RDB 13: %v", err)
	}
	_, err = Choose(ctx, r70, NeedOf(12, "8.0.6", ""))
	if !errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), "redis 7.4 or later") || !strings.Contains(err.Error(), "--redis-server") {
		t.Errorf("explicit 7.0 for RDB 12: %v", err)
	}
	if b, err := Choose(ctx, "valkey-server-9.1", NeedOf(11, "", "")); err != nil || b.Path != v91 {
		t.Errorf("explicit by name: %v %v", b, err)
	}
}
