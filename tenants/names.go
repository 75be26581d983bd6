package tenants

// FieldManager is the server-side apply field manager of everything gyre
// writes.
const FieldManager = "gyre"

// Labels on every object this package provisions.
const (
	// TenantLabel names the tenant an object belongs to. The tenant
	// reconciler stamps the same label on the objects it applies, so one
	// selector finds everything of a tenant.
	TenantLabel = "gyre.dev/tenant"
	// ManagedByLabel marks objects gyre created, with ManagedBy.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of ManagedByLabel.
	ManagedBy = "gyre"
)

// WorkerName is the name of the ServiceAccount, Role and RoleBinding that
// stage Pods run as in the worker namespace.
const WorkerName = "cyclone-worker"

// Namespace is the control-cluster namespace of a tenant's Cyclone objects.
func Namespace(tenant string) string { return "cyclone-" + tenant }

// WorkerNamespace is the namespace of a tenant's stage Pods on an execution
// cluster. It agrees with exec.Config's default.
func WorkerNamespace(tenant string) string { return "cyclone-" + tenant + "-worker" }

// PVCName is the tenant PVC that stage Pods share, Cyclone's name. It
// agrees with exec.Config's default.
func PVCName(tenant string) string { return "cyclone-pvc-" + tenant }
