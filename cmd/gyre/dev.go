package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gyreops/gyre/internal/devenv"
	"github.com/gyreops/gyre/internal/testcluster"
)

func newDevCmd() *cobra.Command {
	o := devenv.Options{}
	var verbose bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run gyre end to end on a local control plane and the example repository",
		Long: `Run gyre end to end with no cluster and no network: a local control plane
(etcd, kube-apiserver, kube-scheduler, kube-controller-manager), a node, the
example pipeline repository served by a real Git server, two Tenants with
two clusters each, and every gyre controller. The node is real where this
machine can run one (Linux, root, make tools): containerd and a kubelet run
the example's demo pipeline in real containers, with gyre's image and a
busybox image loaded. Elsewhere kwok simulates three nodes and the example's
Go CI pipeline. A WorkflowRun starts once every target is Ready. State is kept in --state-dir, so a second run starts in
seconds and keeps your commits to the example repository.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Controller logs would drown the progress lines; --verbose
			// shows them.
			ctrl.SetLogger(zap.New(zap.WriteTo(logSink(verbose, cmd)), zap.UseDevMode(true)))
			if o.Example == "" {
				root, err := testcluster.RepoRoot()
				if err != nil {
					return errors.New("gyre dev runs from a gyre checkout (it needs bin/ and testdata/); pass --example to name the example repository")
				}
				o.Example = filepath.Join(root, "testdata", "repos", "example")
			}
			o.Out = cmd.OutOrStdout()
			err := devenv.Run(cmd.Context(), o)
			if errors.Is(err, devenv.ErrRunFailed) {
				return &ExitError{Code: 1, Err: err}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.StateDir, "state-dir", defaultStateDir(), "directory that keeps the control plane, the example repository and artifacts across runs")
	f.StringVar(&o.Example, "example", "", "directory the example repository is made from on first start (default testdata/repos/example of this checkout)")
	f.BoolVar(&o.Once, "once", false, "exit when the example WorkflowRun is done: 0 if it succeeded")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "with --once, give up after this long")
	f.BoolVar(&verbose, "verbose", false, "show the controllers' logs on stderr")
	f.StringVar(&o.Node, "node", devenv.NodeAuto, `where stages run: "real" (containerd and a kubelet on this machine: Linux and root), "kwok" (simulated), or "auto" (real where it can run)`)
	return cmd
}

func defaultStateDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "gyre", "dev")
}

func logSink(verbose bool, cmd *cobra.Command) io.Writer {
	if verbose {
		return cmd.ErrOrStderr()
	}
	return io.Discard
}
