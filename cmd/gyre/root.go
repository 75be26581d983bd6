package main

import (
	"github.com/spf13/cobra"
)

// ExitError ends gyre with a given exit code; Err, when set, is printed.
// Commands whose exit code carries meaning (validate, diff) return it.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return "exit status"
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "gyre",
		Short:         "GitOps reconciler and workflow engine for Cyclone pipelines",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newControllerCmd(),
		newDevCmd(),
		newVersionCmd(),
		newBuildCmd(),
		newValidateCmd(),
		newDiffCmd(),
		newCoordinatorCmd(),
		newResolveCmd(),
		newCollectCmd(),
		newInstallSelfCmd(),
		newLogsCmd(),
		newRunCmd(),
		newImportCmd(),
	)
	return root
}
