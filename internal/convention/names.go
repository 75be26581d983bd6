package convention

import "strings"

// namespacePrefix starts the name of every namespace Cyclone gives a
// tenant.
const namespacePrefix = "cyclone-"

// Namespace is the control-cluster namespace of a tenant's Cyclone
// objects, Cyclone's "cyclone-<tenant>".
func Namespace(tenant string) string { return namespacePrefix + tenant }

// WorkerNamespace is the namespace of a tenant's stage Pods on every
// execution cluster.
func WorkerNamespace(tenant string) string { return namespacePrefix + tenant + "-worker" }

// PVCName is the tenant PVC that stage Pods share, Cyclone's name.
func PVCName(tenant string) string { return "cyclone-pvc-" + tenant }

// TenantOf returns the tenant owning a control-cluster namespace, and
// false when the namespace is not a tenant's.
func TenantOf(namespace string) (string, bool) {
	tenant, ok := strings.CutPrefix(namespace, namespacePrefix)
	return tenant, ok && tenant != ""
}

// WorkerServiceAccount is the name of the ServiceAccount, Role and
// RoleBinding that stage Pods run as in the worker namespace.
const WorkerServiceAccount = "cyclone-worker"

// ControllerServiceAccount is the ServiceAccount gyre's controller runs
// as; a run may name it only where gyre's own Pods need it.
const ControllerServiceAccount = "gyre-controller"
