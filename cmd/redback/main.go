// Command redback is a disaster-recovery tool for Redis: verified snapshots,
// continuous log shipping, point-in-time restore, checks and restore drills.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"redback/internal/cli"
)

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func main() {
	// go-redis logs dial retries to stderr on its own; redback reports errors itself.
	redis.SetLogger(quiet{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
