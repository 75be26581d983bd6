package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/runlogs"
)

// logsOptions are gyre logs' flags.
type logsOptions struct {
	kubeconfig, namespace string
	follow                bool
	// controllerNamespace, service and port reach the controller's
	// webhook server through the API server's service proxy.
	controllerNamespace, service, port string
}

// newLogsCmd prints the logs of a run's stages: live from the Pods while
// they exist, from the controller's store once they are gone.
func newLogsCmd() *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs [-n NAMESPACE] RUN [STAGE] [-f]",
		Short: "Print the logs of a WorkflowRun's stages",
		Long: `Print the logs of a WorkflowRun's stages, or of one stage.

While a stage's Pod exists its logs are read from the Pod (pods/log) with
your kubeconfig's credentials; -f follows them. Once the Pod is gone the
logs the controller kept are read through the API server's service proxy:
the controller serves them only to users who may get the run, and checks
so with your bearer token.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			stage := ""
			if len(args) == 2 {
				stage = args[1]
			}
			return printLogs(cmd.Context(), cmd.OutOrStdout(), o, args[0], stage)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, ~/.kube/config)")
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of the run (default: the kubeconfig context's)")
	f.BoolVarP(&o.follow, "follow", "f", false, "follow the logs of running stages")
	f.StringVar(&o.controllerNamespace, "controller-namespace", "gyre-system", "namespace of gyre's controller")
	f.StringVar(&o.service, "controller-service", "gyre-webhook", "Service of the controller's webhook server, which serves kept logs")
	f.StringVar(&o.port, "controller-port", "webhook", "port (name or number) of that Service")
	return cmd
}

// userConfig loads the kubeconfig and the namespace to use: the flag's,
// else the context's, else "default".
func userConfig(path, namespace string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	if namespace == "" {
		if namespace, _, err = cc.Namespace(); err != nil {
			return nil, "", err
		}
	}
	return cfg, namespace, nil
}

func printLogs(ctx context.Context, w io.Writer, o logsOptions, name, stage string) error {
	cfg, ns, err := userConfig(o.kubeconfig, o.namespace)
	if err != nil {
		return err
	}
	return writeLogs(ctx, w, cfg, ns, o, name, stage)
}

// writeLogs writes the logs of run name in ns, or of its stage, reading
// with cfg's credentials.
func writeLogs(ctx context.Context, w io.Writer, cfg *rest.Config, ns string, o logsOptions, name, stage string) error {
	scheme, err := mgrconfig.NewScheme()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	run := &cyclonev1alpha1.WorkflowRun{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, run); err != nil {
		return fmt.Errorf("get run %s/%s: %w", ns, name, err)
	}
	stages := []string{stage}
	if stage == "" {
		stages = runStages(run)
	} else if run.Status.Stages[stage] == nil {
		return fmt.Errorf("run %s/%s has no stage %q", ns, name, stage)
	}
	l := &logReader{cs: cs, cfg: cfg, o: o, run: run}
	for _, st := range stages {
		if len(stages) > 1 {
			fmt.Fprintf(w, "==> stage %s <==\n", st)
		}
		if err := l.stage(ctx, w, st); err != nil {
			if len(stages) == 1 {
				return err
			}
			// A stage that never ran, or whose log was not kept, does not
			// hide the others.
			fmt.Fprintf(w, "(no log: %v)\n", err)
		}
	}
	return nil
}

// runStages lists a run's stages in the order they started.
func runStages(run *cyclonev1alpha1.WorkflowRun) []string {
	var names []string
	for n := range run.Status.Stages {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		ta, tb := run.Status.Stages[a].Status.StartTime, run.Status.Stages[b].Status.StartTime
		switch {
		case ta != nil && tb != nil && !ta.Equal(tb):
			if ta.Before(tb) {
				return -1
			}
			return 1
		case ta != nil && tb == nil:
			return -1
		case ta == nil && tb != nil:
			return 1
		}
		return strings.Compare(a, b)
	})
	return names
}

type logReader struct {
	cs  kubernetes.Interface
	cfg *rest.Config
	o   logsOptions
	run *cyclonev1alpha1.WorkflowRun
}

// stage prints one stage's log: live while its Pod exists, kept after.
func (l *logReader) stage(ctx context.Context, w io.Writer, stage string) error {
	if ps := l.run.Status.Stages[stage].Pod; ps != nil {
		pod, err := l.cs.CoreV1().Pods(ps.Namespace).Get(ctx, ps.Name, metav1.GetOptions{})
		switch {
		case err == nil && pod.DeletionTimestamp == nil:
			return l.live(ctx, w, pod)
		case err != nil && !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err):
			return fmt.Errorf("get pod %s/%s of stage %s: %w", ps.Namespace, ps.Name, stage, err)
		}
		// Gone, going, or on an execution cluster this kubeconfig does
		// not reach: the controller kept its log.
	}
	return l.kept(ctx, w, stage)
}

// live prints each started container's log, init containers first,
// following each in turn with -f but gyre's long-running sidecars.
func (l *logReader) live(ctx context.Context, w io.Writer, pod *corev1.Pod) error {
	containers := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range containers {
		if len(containers) > 1 {
			fmt.Fprintf(w, "==> %s <==\n", c.Name)
		}
		// The coordinator and the Docker daemon run until the Pod goes:
		// following them would wait for GC.
		follow := l.o.follow && c.Name != "csc-co" && c.Name != "csc-dind"
		rc, err := l.cs.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: c.Name, Follow: follow}).Stream(ctx)
		if apierrors.IsBadRequest(err) {
			continue // not started yet, or never will
		}
		if err != nil {
			return fmt.Errorf("read log of pod %s/%s container %s: %w", pod.Namespace, pod.Name, c.Name, err)
		}
		_, err = io.Copy(w, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// kept prints the stage's log the controller kept, through the API
// server's service proxy. The API server drops the Authorization header
// of the requests it proxies, so the user's token travels in
// runlogs.TokenHeader for the controller to check.
func (l *logReader) kept(ctx context.Context, w io.Writer, stage string) error {
	token, err := bearerToken(l.cfg)
	if err != nil {
		return err
	}
	rc, err := l.cs.CoreV1().RESTClient().Get().
		Namespace(l.o.controllerNamespace).Resource("services").Name(l.o.service+":"+l.o.port).SubResource("proxy").
		Suffix("logs", l.run.Namespace, l.run.Name, stage).
		SetHeader(runlogs.TokenHeader, token).
		Stream(ctx)
	if err != nil {
		return fmt.Errorf("read kept log of stage %s of run %s/%s from service %s/%s: %w", stage, l.run.Namespace, l.run.Name, l.o.controllerNamespace, l.o.service, err)
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

// bearerToken is the kubeconfig's token, which the controller checks.
func bearerToken(cfg *rest.Config) (string, error) {
	if cfg.BearerToken != "" {
		return cfg.BearerToken, nil
	}
	if cfg.BearerTokenFile != "" {
		b, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", errors.New("kept logs need a kubeconfig with a bearer token: the controller checks it with a TokenReview, and client certificates do not travel through the API server's proxy")
}
