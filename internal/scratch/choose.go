package scratch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
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
	ma, mi := majorMinor(b.Version)
	return ma > major || ma == major && mi >= minor
}

// majorMinor parses "8.0.6" into 8, 0.
func majorMinor(v string) (int, int) {
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
	ma, mi := majorMinor(version)
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

// Need is what a scratch server must load: an RDB of RDBVersion, written
// by a server of Family and Version (both "" when unknown; they only
// order the candidates).
type Need struct {
	RDBVersion int
	Family     string
	Version    string
}

// NeedOf is the Need of an RDB of rdbVersion whose source reported
// redisVersion and valkeyVersion (either may be ""; a Valkey source
// reports both, its redis_version being the Redis it is compatible with).
func NeedOf(rdbVersion int, redisVersion, valkeyVersion string) Need {
	switch {
	case valkeyVersion != "":
		return Need{RDBVersion: rdbVersion, Family: "valkey", Version: valkeyVersion}
	case rdbVersion >= 80:
		return Need{RDBVersion: rdbVersion, Family: "valkey"}
	case redisVersion != "":
		return Need{RDBVersion: rdbVersion, Family: "redis", Version: redisVersion}
	}
	return Need{RDBVersion: rdbVersion}
}

// String describes the data: "RDB version 12 (written by redis 8.0.6)".
func (n Need) String() string {
	s := fmt.Sprintf("RDB version %d", n.RDBVersion)
	if n.Version != "" {
		fam := n.Family
		if fam == "" {
			fam = "redis"
		}
		s += fmt.Sprintf(" (written by %s %s)", fam, n.Version)
	}
	return s
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

// ErrNoServer is wrapped when no server binary fits the data.
var ErrNoServer = errors.New("no server that can load the data")

// Choose returns the server binary a scratch server runs to load data of
// need: path when given (--redis-server, config redis_server:), which must
// load it; else the best of the candidates on PATH (redis-server,
// valkey-server and their versioned names redis-server-8.0,
// valkey-server-9.1, ...): one of the source's family first, of its
// major.minor first among those, else the newest. When none fits, the
// error (wrapping ErrNoServer) says which server version is needed.
func Choose(ctx context.Context, path string, need Need) (Build, error) {
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return Build{}, fmt.Errorf("%w: %s not found (%v): give --redis-server PATH of %s", ErrNoServer, path, err, Servers(need.RDBVersion))
		}
		b, err := Describe(ctx, p)
		if err != nil {
			return Build{}, err
		}
		if !b.Reads(need.RDBVersion) {
			return Build{}, fmt.Errorf("%w: %s cannot load %s: give --redis-server of %s", ErrNoServer, b, need, Servers(need.RDBVersion))
		}
		return b, nil
	}
	var fit []Build
	var seen []string
	for _, p := range Candidates() {
		b, err := Describe(ctx, p)
		if err != nil {
			continue
		}
		seen = append(seen, b.Family+" "+b.Version)
		if b.Reads(need.RDBVersion) {
			fit = append(fit, b)
		}
	}
	if len(fit) == 0 {
		have := "none on PATH"
		if len(seen) > 0 {
			have = "on PATH: " + strings.Join(seen, ", ")
		}
		return Build{}, fmt.Errorf("%w: %s needs %s (%s); install one or give --redis-server PATH", ErrNoServer, need, Servers(need.RDBVersion), have)
	}
	sort.SliceStable(fit, func(i, j int) bool { return better(fit[i], fit[j], need) })
	return fit[0], nil
}

// better orders candidates: the source's family, then its major.minor,
// then the newer version.
func better(a, b Build, need Need) bool {
	fam := need.Family
	if fam == "" && need.Version != "" {
		fam = "redis"
	}
	if (a.Family == fam) != (b.Family == fam) {
		return a.Family == fam
	}
	nma, nmi := majorMinor(need.Version)
	ama, ami := majorMinor(a.Version)
	bma, bmi := majorMinor(b.Version)
	if need.Version != "" {
		as, bs := ama == nma && ami == nmi, bma == nma && bmi == nmi
		if as != bs {
			return as
		}
	}
	if ama != bma {
		return ama > bma
	}
	return ami > bmi
}

// Candidates lists the server binaries on PATH, first match of each name:
// redis-server, valkey-server, and redis-server-* / valkey-server-*.
func Candidates() []string {
	var out []string
	seen := map[string]bool{}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			continue
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			n := e.Name()
			if n != "redis-server" && n != "valkey-server" && !strings.HasPrefix(n, "redis-server-") && !strings.HasPrefix(n, "valkey-server-") {
				continue
			}
			if seen[n] {
				continue
			}
			p := filepath.Join(dir, n)
			if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				continue
			}
			seen[n] = true
			out = append(out, p)
		}
	}
	return out
}
