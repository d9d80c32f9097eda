// Command signerd is the HSM-backed signing daemon.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/signerd/signerd/internal/daemon"
	"github.com/signerd/signerd/internal/errdefs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := daemon.NewRootCommand(os.Stdout, os.Stderr, os.Getenv).ExecuteContext(ctx)
	stop()
	if err != nil {
		// The kind (": invalid argument") is for programs, not people.
		fmt.Fprintf(os.Stderr, "signerd: %s\n", errdefs.TrimKindOf(err))
		os.Exit(daemon.ExitCode(err))
	}
}
