package redistest

import (
	"context"
	"os"
	"strings"
	"testing"

	"redback/internal/serverver"
)

// Bin is one server build a test can run: a redis-server or valkey-server
// binary (a path, or a wrapper script from scripts/servers.sh) and what its
// --version says.
type Bin struct{ serverver.Build }

// Name is "redis-8.0.6" or "valkey-9.1.2": the subtest name EachServer uses.
func (b Bin) Name() string { return b.Family + "-" + b.Version }

// HashFieldTTL reports whether the server has per-field hash TTLs
// (HEXPIRE, HPEXPIRETIME): Redis 7.4 and later, Valkey 9.0 and later.
func (b Bin) HashFieldTTL() bool {
	if b.Family == "valkey" {
		return b.AtLeast(9, 0)
	}
	return b.AtLeast(7, 4)
}

// Valkey reports whether b is a Valkey server.
func (b Bin) Valkey() bool { return b.Family == "valkey" }

// Describe returns the build at path (serverver.Describe), failing the test
// when it is not a Redis or Valkey server.
func Describe(t testing.TB, path string) Bin {
	t.Helper()
	b, err := serverver.Describe(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return Bin{b}
}

// Default is the build Start runs: Binary's.
func Default(t testing.TB) Bin {
	t.Helper()
	return Describe(t, Binary(t))
}

// Servers returns the server builds named by $REDBACK_TEST_SERVERS (a
// comma-separated list of binaries: names on PATH or paths, e.g.
// "redis-server,redis-server-8.0,valkey-server-8.1,valkey-server-9.1"
// with scripts/servers.sh's bin dir on PATH), or just Default when it is
// unset. A named binary that is missing skips the test, or fails it under
// REDBACK_TEST_REQUIRE_REDIS=1.
func Servers(t testing.TB) []Bin {
	t.Helper()
	list := os.Getenv("REDBACK_TEST_SERVERS")
	if strings.TrimSpace(list) == "" {
		return []Bin{Default(t)}
	}
	var out []Bin
	for _, name := range strings.Split(list, ",") {
		if name = strings.TrimSpace(name); name != "" {
			out = append(out, Describe(t, binary(t, "", name)))
		}
	}
	return out
}

// EachServer runs f as a subtest (named by Bin.Name) for every build of
// Servers.
func EachServer(t *testing.T, f func(t *testing.T, b Bin)) {
	t.Helper()
	for _, b := range Servers(t) {
		t.Run(b.Name(), func(t *testing.T) { f(t, b) })
	}
}

// Find returns the first build of Servers of family whose version is
// major.minor or newer, or false.
func Find(t testing.TB, family string, major, minor int) (Bin, bool) {
	t.Helper()
	for _, b := range Servers(t) {
		if b.Family == family && b.AtLeast(major, minor) {
			return b, true
		}
	}
	return Bin{}, false
}
