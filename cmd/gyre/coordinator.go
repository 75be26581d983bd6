package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gyreops/gyre/internal/agent"
	"github.com/gyreops/gyre/internal/convention"
)

func newCoordinatorCmd() *cobra.Command {
	var shared, data, podInfo, termination string
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a stage Pod's coordinator sidecar (run by gyre's stage Pods)",
		Long: `Wait for the stage's workload containers, leave the results they wrote to
/cyclone/results/__result__ in the coordinator's termination message, for the
engine to copy into the WorkflowRun's status, publish the stage's output
artifacts, and tell the output resolvers to push. The coordinator talks to no
API server: the engine says when the workload has ended through an annotation
that the kubelet writes into --podinfo.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := ctrl.LoggerInto(cmd.Context(), zap.New())
			stage, err := agent.StageFromEnv(os.Getenv)
			if err != nil {
				return err
			}
			c := &agent.Coordinator{Stage: stage, Shared: shared, Data: data, PodInfo: podInfo, TerminationLog: termination}
			return c.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&shared, "shared", convention.CoordinatorVolumePath, "volume shared with the other containers: results/ and notify/")
	cmd.Flags().StringVar(&data, "data", convention.CoordinatorDataPath, "the run's data directory")
	cmd.Flags().StringVar(&podInfo, "podinfo", convention.CoordinatorPodInfoPath, "downward API directory of the stage Pod's annotations")
	cmd.Flags().StringVar(&termination, "termination-log", convention.TerminationLog, "file of the coordinator's termination message, which carries the outputs")
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
	cmd.Flags().StringVar(&workdir, "workdir", convention.HelperWorkspace, "working directory; the data is in its data/")
	cmd.Flags().StringVar(&results, "results", convention.ResultsDir, "directory of the result file a pull writes")
	return cmd
}

func newCollectCmd() *cobra.Command {
	var staging string
	var artifacts []string
	cmd := &cobra.Command{
		Use:   "collect [--artifact NAME=PATH]... -- COMMAND [ARG]...",
		Short: "Run a workload's command, then collect its output artifacts (run by gyre's stage Pods)",
		Long: `Run COMMAND as the workload container's command, and once it has succeeded copy
each output artifact, a file or a directory at PATH, into the attempt's staging
directory, for the coordinator to publish. The container ends with COMMAND's
exit code, or 1 when an artifact is missing.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := &agent.Collector{Staging: staging, Stdin: os.Stdin, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
			for _, a := range artifacts {
				name, p, ok := strings.Cut(a, "=")
				if !ok || name == "" || p == "" {
					return fmt.Errorf("--artifact %q: want NAME=PATH", a)
				}
				c.Artifacts = append(c.Artifacts, agent.Artifact{Name: name, Path: p})
			}
			if code := c.Run(cmd.Context(), args); code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&staging, "staging", convention.StagingMountPath, "the attempt's staging directory")
	cmd.Flags().StringArrayVar(&artifacts, "artifact", nil, "output artifact NAME=PATH; repeatable")
	return cmd
}

func newInstallSelfCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "install-self DEST",
		Short: "Copy this gyre binary to DEST (run by gyre's stage Pods)",
		Long: `Copy the running gyre binary to DEST, a volume the stage Pod shares with its
workload container, which runs it as "gyre collect".`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return agent.InstallSelf(args[0]) },
	}
}
