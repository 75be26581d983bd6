package exec

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
	"github.com/gyreops/gyre/internal/scheduling"
)

// Where a run executes is gyre's to choose, not the run's: its Tenant's
// worker namespace, PVC and clusters, as a ServiceAccount other than
// gyre's own, and within its Tenant's Pod Security level. This file
// decides where, and refuses what would cross the tenant boundary.

// targetOf returns where the run's Pods live: the worker namespace and
// PVC of the Tenant owning the run's namespace, on the cluster its
// executionContext names among the Tenant's. A run outside every Tenant,
// or whose executionContext or serviceAccount points elsewhere, gets a
// *refusedError: where a run executes is gyre's to choose, not the run's.
func (r *Engine) targetOf(ctx context.Context, run *cyclonev1alpha1.WorkflowRun) (*target, error) {
	tn, err := r.tenantOf(ctx, run.Namespace)
	if err != nil {
		return nil, err
	}
	if err := r.checkExecutionContext(run, tn); err != nil {
		return nil, err
	}
	level, err := podsecurity.ParseLevel(tn.Spec.PodSecurity)
	if err != nil {
		// The CRD's enum keeps this out; should it slip through, the
		// strictest level errs on the safe side.
		level = podsecurity.Restricted
	}
	c, err := r.clusters.get(ctx, clusterName(run))
	if err != nil {
		return nil, err
	}
	var pods corev1client.PodsGetter
	if r.logs != nil {
		if pods, err = c.podsClient(); err != nil {
			return nil, fmt.Errorf("pods/log client: %w", err)
		}
	}
	return &target{
		pods:       pods,
		client:     c.cluster.GetClient(),
		live:       c.cluster.GetAPIReader(),
		namespace:  r.cfg.WorkerNamespace(tn.Name),
		pvc:        r.cfg.PVCName(tn.Name),
		level:      level,
		scheduling: scheduling.Of(tn),
	}, nil
}

// Reasons a run is refused before anything of it is created.
const (
	// ReasonNoTenant: the run's namespace belongs to no Tenant.
	ReasonNoTenant = "NoTenant"
	// ReasonExecutionContextRefused: the run asks for a cluster,
	// namespace, PVC or ServiceAccount gyre did not assign its tenant.
	ReasonExecutionContextRefused = "ExecutionContextRefused"
	// ReasonPodSecurity: a Pod would break its Tenant's Pod Security level.
	ReasonPodSecurity = "PodSecurity"
	// ReasonScheduling: a Pod would name its node, or carry a toleration,
	// node selector, priority class or runtime class its Tenant's
	// spec.scheduling does not allow.
	ReasonScheduling = "Scheduling"
)

// refusedError says a run, or one of its Pods, may not execute as
// specified; only a change to its spec or to its Tenant helps.
type refusedError struct{ reason, msg string }

func (e *refusedError) Error() string { return e.msg }

func refused(reason, format string, args ...any) error {
	return &refusedError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// tenantOf returns the Tenant owning the control-cluster namespace ns,
// "cyclone-<tenant>". The cache may not have a Tenant created a moment
// ago, so a miss is confirmed with the API server before the run is
// refused for it.
func (r *Engine) tenantOf(ctx context.Context, ns string) (*gyrev1alpha1.Tenant, error) {
	noTenant := func() error {
		return refused(ReasonNoTenant, "namespace %s belongs to no Tenant: gyre runs WorkflowRuns only in tenant namespaces cyclone-<tenant>", ns)
	}
	name, ok := convention.TenantOf(ns)
	if !ok {
		return nil, noTenant()
	}
	tn := &gyrev1alpha1.Tenant{}
	err := r.client.Get(ctx, types.NamespacedName{Name: name}, tn)
	if apierrors.IsNotFound(err) {
		err = r.live.Get(ctx, types.NamespacedName{Name: name}, tn)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, noTenant()
	case err != nil:
		return nil, fmt.Errorf("get tenant %s: %w", name, err)
	case !tn.DeletionTimestamp.IsZero():
		return nil, refused(ReasonNoTenant, "namespace %s belongs to Tenant %s, which is being deleted", ns, name)
	}
	return tn, nil
}

// checkExecutionContext refuses a run whose spec.executionContext or
// spec.serviceAccount names anything but what gyre assigned its Tenant:
// the worker namespace, the tenant PVC, one of the Tenant's clusters, and
// a ServiceAccount of the worker namespace other than gyre's own.
func (r *Engine) checkExecutionContext(run *cyclonev1alpha1.WorkflowRun, tn *gyrev1alpha1.Tenant) error {
	if ec := run.Spec.ExecutionContext; ec != nil {
		if want := r.cfg.WorkerNamespace(tn.Name); ec.Namespace != "" && ec.Namespace != want {
			return refused(ReasonExecutionContextRefused, "spec.executionContext.namespace %q: runs of tenant %s run only in namespace %s", ec.Namespace, tn.Name, want)
		}
		if want := r.cfg.PVCName(tn.Name); ec.PVC != "" && ec.PVC != want {
			return refused(ReasonExecutionContextRefused, "spec.executionContext.pvc %q: runs of tenant %s use only PVC %q", ec.PVC, tn.Name, want)
		}
		if allowed := tenantClusters(tn); !slices.Contains(allowed, ec.Cluster) {
			return refused(ReasonExecutionContextRefused, "spec.executionContext.cluster %q is not a cluster of tenant %s (%s)", ec.Cluster, tn.Name, describeClusters(allowed))
		}
	} else if !slices.Contains(tenantClusters(tn), "") {
		return refused(ReasonExecutionContextRefused, "spec.executionContext.cluster is empty, the control cluster, which is not a cluster of tenant %s (%s)", tn.Name, describeClusters(tenantClusters(tn)))
	}
	if sa := run.Spec.ServiceAccount; sa != "" {
		if msg := r.serviceAccountProblem(sa); msg != "" {
			return refused(ReasonExecutionContextRefused, "spec.serviceAccount %q: %s", sa, msg)
		}
	}
	return nil
}

// serviceAccountProblem says why a stage Pod may not run as the
// ServiceAccount name, or "" if it may. A plain name is one of the worker
// namespace; gyre's own account may not be borrowed.
func (r *Engine) serviceAccountProblem(name string) string {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "must be the plain name of a ServiceAccount in the worker namespace"
	}
	if name == r.cfg.ControllerServiceAccount {
		return "gyre's own ServiceAccount may not run stages"
	}
	return ""
}

// tenantClusters lists the ExecutionClusters a Tenant's runs may name,
// "" standing for the control cluster: a Tenant without clusters runs
// there, and so does a cluster entry without executionClusterRef.
func tenantClusters(tn *gyrev1alpha1.Tenant) []string {
	if len(tn.Spec.Clusters) == 0 {
		return []string{""}
	}
	out := make([]string, 0, len(tn.Spec.Clusters))
	for _, c := range tn.Spec.Clusters {
		name := ""
		if c.ExecutionClusterRef != nil {
			name = c.ExecutionClusterRef.Name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func describeClusters(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
		if n == "" {
			quoted[i] = `"" (the control cluster)`
		}
	}
	return "allowed: " + strings.Join(quoted, ", ")
}

// checkPod refuses a Pod, just before it is created, that runs as a
// ServiceAccount it may not, or breaks the Pod Security level or the
// scheduling of the run's Tenant. Stages and runs created through the API
// never went through render's checks, so this is where the promise is
// kept.
func (r *Engine) checkPod(s *scope, pod *corev1.Pod) error {
	if sa := pod.Spec.ServiceAccountName; sa != "" {
		if msg := r.serviceAccountProblem(sa); msg != "" {
			return refused(ReasonExecutionContextRefused, "pod %s: serviceAccountName %q: %s", pod.Name, sa, msg)
		}
	}
	if pod.Namespace != s.target.namespace {
		return refused(ReasonExecutionContextRefused, "pod %s: namespace %q is not the worker namespace %s", pod.Name, pod.Namespace, s.target.namespace)
	}
	if v := podsecurity.Check(s.target.level, &pod.ObjectMeta, &pod.Spec); len(v) > 0 {
		return refused(ReasonPodSecurity, "pod %s %s", pod.Name, podsecurity.Error(s.target.level, v))
	}
	if v := scheduling.Check(s.target.scheduling, &pod.Spec); len(v) > 0 {
		return refused(ReasonScheduling, "pod %s %s", pod.Name, scheduling.Error(v))
	}
	return nil
}
