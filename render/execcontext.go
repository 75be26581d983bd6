package render

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// runPolicy checks where a WorkflowRun, or the runs a WorkflowTrigger
// starts, would run: the execution context is gyre's to choose, so a run
// may only name what its tenant was given, and its volumes must meet the
// tenant's Pod Security level.
func (c *checker) runPolicy(i int, spec *cyclonev1alpha1.WorkflowRunSpec) {
	c.presetVolumes(i, spec)
	c.serviceAccount(i, "spec.serviceAccount", spec.ServiceAccount, nil)
	ec := spec.ExecutionContext
	if ec == nil {
		return
	}
	if ec.Namespace != "" && ec.Namespace != c.target.WorkerNamespace() {
		c.fail(i, "spec.executionContext.namespace", "namespace %q is not the tenant's worker namespace %q", ec.Namespace, c.target.WorkerNamespace())
	}
	// An empty cluster leaves the choice to the engine. Without the
	// Tenant's clusters (gyre validate) there is nothing to compare with.
	if ec.Cluster != "" && len(c.target.ExecutionClusters) > 0 && !slices.Contains(c.target.ExecutionClusters, ec.Cluster) {
		c.fail(i, "spec.executionContext.cluster", "cluster %q is not an execution cluster of tenant %q (it runs on %s)", ec.Cluster, c.target.Tenant, clusterList(c.target.ExecutionClusters))
	}
	if ec.PVC != "" && ec.PVC != c.target.PVC() {
		c.fail(i, "spec.executionContext.pvc", "PVC %q is not the tenant's PVC %q", ec.PVC, c.target.PVC())
	}
}

// serviceAccount checks a ServiceAccount name a stage Pod would run as:
// a plain name, which Kubernetes reads in the Pod's own namespace, the
// tenant's worker namespace, and never gyre's own. A "system:…" or
// "namespace:name" form is refused before the API server sees it. A
// template Stage's "{{ argument }}" is filled in, and checked, by the
// engine.
func (c *checker) serviceAccount(i int, field, name string, s *cyclonev1alpha1.Stage) {
	if name == "" {
		return
	}
	if s != nil && s.Labels[cyclonev1alpha1.LabelStageTemplate] == "true" && strings.Contains(name, "{{") {
		return
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		c.fail(i, field, "ServiceAccount %q must be the plain name of a ServiceAccount in the tenant's worker namespace %q", name, c.target.WorkerNamespace())
		return
	}
	// gyre's own ServiceAccount has every tenant's rights.
	if name == convention.ControllerServiceAccount {
		c.fail(i, field, "ServiceAccount %q is gyre's own; stages run as the tenant's", name)
	}
}

// clusterList names execution clusters for a message, the control
// cluster by that name.
func clusterList(clusters []string) string {
	names := make([]string, len(clusters))
	for k, n := range clusters {
		if n == "" {
			names[k] = "the control cluster"
		} else {
			names[k] = fmt.Sprintf("%q", n)
		}
	}
	return strings.Join(names, ", ")
}
