package scratch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"redback/internal/serverver"
)

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

// ErrNoServer is wrapped when no server binary fits the data.
var ErrNoServer = errors.New("no server that can load the data")

// Choose returns the server binary a scratch server runs to load data of
// need: path when given (--redis-server, config redis_server:), which must
// load it; else the best of the candidates on PATH (redis-server,
// valkey-server and their versioned names redis-server-8.0,
// valkey-server-9.1, ...): one of the source's family first, of its
// major.minor first among those, else the newest. When none fits, the
// error (wrapping ErrNoServer) says which server version is needed.
func Choose(ctx context.Context, path string, need Need) (serverver.Build, error) {
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return serverver.Build{}, fmt.Errorf("%w: %s not found (%v): give --redis-server PATH of %s", ErrNoServer, path, err, serverver.Servers(need.RDBVersion))
		}
		b, err := serverver.Describe(ctx, p)
		if err != nil {
			return serverver.Build{}, err
		}
		if !b.Reads(need.RDBVersion) {
			return serverver.Build{}, fmt.Errorf("%w: %s cannot load %s: give --redis-server of %s", ErrNoServer, b, need, serverver.Servers(need.RDBVersion))
		}
		return b, nil
	}
	var fit []serverver.Build
	var seen []string
	for _, p := range Candidates() {
		b, err := serverver.Describe(ctx, p)
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
		return serverver.Build{}, fmt.Errorf("%w: %s needs %s (%s); install one or give --redis-server PATH", ErrNoServer, need, serverver.Servers(need.RDBVersion), have)
	}
	sort.SliceStable(fit, func(i, j int) bool { return better(fit[i], fit[j], need) })
	return fit[0], nil
}

// better orders candidates: the source's family, then its major.minor,
// then the newer version.
func better(a, b serverver.Build, need Need) bool {
	fam := need.Family
	if fam == "" && need.RDBVersion < 80 {
		fam = "redis" // REDIS magic
	}
	if (a.Family == fam) != (b.Family == fam) {
		return a.Family == fam
	}
	nma, nmi := serverver.MajorMinor(need.Version)
	ama, ami := serverver.MajorMinor(a.Version)
	bma, bmi := serverver.MajorMinor(b.Version)
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
