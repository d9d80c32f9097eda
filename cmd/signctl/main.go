// Command signctl is the command line of signerd: sign, verify, and manage
// keys, trust and policy.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/signerd/signerd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
