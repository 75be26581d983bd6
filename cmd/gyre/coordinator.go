package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/internal/agent"
)

func newCoordinatorCmd() *cobra.Command {
	var shared, data string
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a stage Pod's coordinator sidecar (run by gyre's stage Pods)",
		Long: `Wait for the stage's workload containers, record the results they wrote to
/cyclone/results/__result__ on the stage Pod, for the engine to copy into the
WorkflowRun's status,
publish the stage's output artifacts, and tell the output resolvers to push.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := ctrl.LoggerInto(cmd.Context(), zap.New())
			stage, err := agent.StageFromEnv(os.Getenv)
			if err != nil {
				return err
			}
			podCfg, err := restConfig("")
			if err != nil {
				return fmt.Errorf("stage pod's cluster: %w", err)
			}
			pods, err := kubernetes.NewForConfig(podCfg)
			if err != nil {
				return err
			}
			c := &agent.Coordinator{Stage: stage, Pods: pods, Shared: shared, Data: data}
			return c.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&shared, "shared", exec.CoordinatorVolumePath, "volume shared with the other containers: results/ and notify/")
	cmd.Flags().StringVar(&data, "data", exec.CoordinatorDataPath, "the run's data directory")
	return cmd
}

func newResolveCmd() *cobra.Command {
	var workdir, results string
	cmd := &cobra.Command{
		Use:   "resolve TYPE pull|push",
		Short: "Pull or push a Resource inside a stage Pod (run by gyre's stage Pods)",
		Long: `Pull a Resource of type TYPE (Git) into /workspace/data, or push /workspace/data
(Http) once the coordinator says the workload succeeded. Parameters come from
the environment, as for Cyclone's resolver images (SCM_URL, SCM_REVISION,
SCM_AUTH, URL, METHOD, ...); PULL_POLICY applies to persistent resources.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := ctrl.LoggerInto(cmd.Context(), zap.New())
			r := &agent.Resolver{Type: args[0], Workdir: workdir, Results: results, Getenv: os.Getenv}
			switch args[1] {
			case "pull":
				return r.Pull(ctx)
			case "push":
				return r.Push(ctx)
			}
			return fmt.Errorf("resolve: unknown operation %q: use pull or push", args[1])
		},
	}
	cmd.Flags().StringVar(&workdir, "workdir", exec.HelperWorkspace, "working directory; the data is in its data/")
	cmd.Flags().StringVar(&results, "results", exec.ResultsDir, "directory of the result file a pull writes")
	return cmd
}
