package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"time"
)

// serverVersion runs `redis-server --version` and returns "7.0.15".
func serverVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("run %s --version: %w", bin, err)
	}
	m := regexp.MustCompile(`v=([0-9][0-9.]*)`).FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s --version printed %q, not a redis-server version", bin, bytes.TrimSpace(out))
	}
	return string(m[1]), nil
}

// LoadError means the scratch server did not load the restored file.
type LoadError struct{ Detail string }

func (e *LoadError) Error() string {
	return "scratch redis-server exited while loading the restored RDB; its log: " + e.Detail
}

// VerificationFailed marks a failed load as a failed drill (exit 3).
func (e *LoadError) VerificationFailed() bool { return true }

// errNoServer is wrapped when no redis-server binary can be found.
var errNoServer = errors.New("redis-server not found")

// findServer resolves the redis-server binary: path when given, else PATH.
func findServer(path string) (string, error) {
	if path == "" {
		path = "redis-server"
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("%w (%s): install redis-server or give --redis-server PATH", errNoServer, path)
	}
	return p, nil
}
