// Command redback is a disaster-recovery tool for Redis: verified snapshots,
// continuous log shipping, point-in-time restore, checks and restore drills.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"redback/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, SetMemoryLimit: debug.SetMemoryLimit})
	stop()
	os.Exit(code)
}
