// Command gyre is a GitOps reconciler and workflow engine for Cyclone
// pipelines: `gyre controller` runs it in a cluster, `gyre dev` runs it
// end to end on a local control plane, and `gyre build`, `gyre validate`
// and `gyre diff` show reviewers what a pull request changes. `gyre
// import` writes a repository from a running Cyclone's tenants.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code: the
// code an ExitError carries, 2 for any other error, else 0.
func run(ctx context.Context, args []string) int {
	cmd := newRootCmd()
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Err != nil {
			fmt.Fprintln(os.Stderr, "gyre:", exit.Err)
		}
		return exit.Code
	}
	fmt.Fprintln(os.Stderr, "gyre:", err)
	return 2
}
