// Package serverver tells Redis and Valkey server builds apart: a binary's
// family and version (from its --version) and the RDB versions it loads.
package serverver

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Build is a server binary and what it is: its family ("redis" or
// "valkey") and version, from its --version.
type Build struct {
	Path    string `json:"path"`
	Family  string `json:"family"`
	Version string `json:"version"`
}

// String is "redis 8.0.6 (/usr/bin/redis-server)".
func (b Build) String() string { return fmt.Sprintf("%s %s (%s)", b.Family, b.Version, b.Path) }

var (
	descMu    sync.Mutex
	descCache = map[string]Build{}
	versionRE = regexp.MustCompile(`(?i)\b(redis|valkey) server v=([0-9]+\.[0-9]+[0-9.]*)`)
)

// Describe runs path --version (once per path and process) and returns
// the build.
func Describe(ctx context.Context, path string) (Build, error) {
	descMu.Lock()
	b, ok := descCache[path]
	descMu.Unlock()
	if ok {
		return b, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return Build{}, fmt.Errorf("run %s --version: %w", path, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return Build{}, fmt.Errorf("%s --version printed %q, not a Redis or Valkey server", path, strings.TrimSpace(string(out)))
	}
	b = Build{Path: path, Family: strings.ToLower(string(m[1])), Version: string(m[2])}
	descMu.Lock()
	descCache[path] = b
	descMu.Unlock()
	return b, nil
}

// AtLeast reports whether b's version is major.minor or newer.
func (b Build) AtLeast(major, minor int) bool {
	ma, mi := MajorMinor(b.Version)
	return ma > major || ma == major && mi >= minor
}

// majorMinor parses "8.0.6" into 8, 0.
func MajorMinor(v string) (int, int) {
	parts := strings.SplitN(v, ".", 3)
	ma, _ := strconv.Atoi(parts[0])
	mi := 0
	if len(parts) > 1 {
		mi, _ = strconv.Atoi(parts[1])
	}
	return ma, mi
}

// RDBVersions returns the RDB versions a server of family and version
// loads: Redis up to its own (7.0: 10, 7.2: 11, 7.4–8.4: 12, 8.6 and
// later: 13); Valkey up to 11, and from 9.0 its own numbers (9.0 and 9.1:
// 80, 9.2 and later: 81). Valkey's default rdb-version-check strict
// refuses Redis's 12–79.
func RDBVersions(family, version string) (maxRedis, maxValkey int) {
	ma, mi := MajorMinor(version)
	if family == "valkey" {
		switch {
		case ma > 9 || ma == 9 && mi >= 2:
			return 11, 81
		case ma == 9:
			return 11, 80
		}
		return 11, 0
	}
	switch {
	case ma > 8 || ma == 8 && mi >= 6:
		return 13, 0
	case ma == 8 || ma == 7 && mi >= 4:
		return 12, 0
	case ma == 7 && mi >= 2:
		return 11, 0
	case ma == 7:
		return 10, 0
	case ma >= 5:
		return 9, 0
	case ma == 4:
		return 8, 0
	}
	return 7, 0
}

// Reads reports whether b loads an RDB of version v (80 and up: Valkey's
// numbering).
func (b Build) Reads(v int) bool {
	maxRedis, maxValkey := RDBVersions(b.Family, b.Version)
	if v >= 80 {
		return v <= maxValkey
	}
	return v <= maxRedis
}

// Servers names the servers that load an RDB of version v.
func Servers(v int) string {
	switch {
	case v >= 81:
		return "valkey 9.2 or later"
	case v >= 80:
		return "valkey 9.0 or later"
	case v >= 13:
		return "redis 8.6 or later"
	case v >= 12:
		return "redis 7.4 or later"
	case v >= 11:
		return "redis 7.2 or later, or valkey 7.2 or later"
	case v >= 10:
		return "redis 7.0 or later, or valkey"
	}
	return "redis or valkey"
}
