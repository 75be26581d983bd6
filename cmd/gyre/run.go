package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/mgrconfig"
)

// newRunCmd starts a WorkflowRun by hand, as Cyclone's "Run" button did.
func newRunCmd() *cobra.Command {
	var (
		kubeconfig, namespace string
		params                []string
	)
	cmd := &cobra.Command{
		Use:   "run [-n NAMESPACE] WORKFLOW [--param NAME=VALUE]...",
		Short: "Start a run of a Workflow and print its name",
		Long: `Start a run of a Workflow and print its name.

--param sets a Workflow global variable for this run, as a WorkflowRun's
spec.globalVariables does: its value wins over the Workflow's.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			run, err := newRun(args[0], params)
			if err != nil {
				return err
			}
			cfg, ns, err := userConfig(kubeconfig, namespace)
			if err != nil {
				return err
			}
			run.Namespace = ns
			scheme, err := mgrconfig.NewScheme()
			if err != nil {
				return err
			}
			c, err := client.New(cfg, client.Options{Scheme: scheme})
			if err != nil {
				return err
			}
			if err := c.Create(cmd.Context(), run); err != nil {
				return fmt.Errorf("start run of workflow %s/%s: %w", ns, args[0], err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), run.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, ~/.kube/config)")
	f.StringVarP(&namespace, "namespace", "n", "", "namespace of the Workflow (default: the kubeconfig context's)")
	f.StringArrayVar(&params, "param", nil, "NAME=VALUE of a Workflow global variable; repeatable")
	return cmd
}

// newRun is a run of workflow with params as its global variables. It
// carries the engine's finalizer from its creation, as the runs of
// triggers do, so that the engine need not write it.
func newRun(workflow string, params []string) (*cyclonev1alpha1.WorkflowRun, error) {
	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{GenerateName: runPrefix(workflow), Finalizers: []string{convention.RunFinalizer}},
		Spec: cyclonev1alpha1.WorkflowRunSpec{
			WorkflowRef: &corev1.ObjectReference{APIVersion: cyclonev1alpha1.GroupVersion.String(), Kind: "Workflow", Name: workflow},
		},
	}
	seen := map[string]bool{}
	for _, p := range params {
		name, value, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--param %q: want NAME=VALUE", p)
		}
		if seen[name] {
			return nil, fmt.Errorf("--param %s given twice", name)
		}
		seen[name] = true
		run.Spec.GlobalVariables = append(run.Spec.GlobalVariables, cyclonev1alpha1.GlobalVariable{Name: name, Value: value})
	}
	return run, nil
}

// runPrefix is the run name's prefix: the Workflow's name, short enough
// for the random suffix and the stage Pod names built from it.
func runPrefix(workflow string) string {
	const max = 40
	if len(workflow) > max {
		workflow = strings.TrimRight(workflow[:max], "-.")
	}
	return workflow + "-"
}
