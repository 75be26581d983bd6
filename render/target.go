package render

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
	"github.com/gyreops/gyre/internal/scheduling"
)

// TenantsDir is the repository directory holding one directory per tenant.
const TenantsDir = "tenants"

// DefaultCluster names the single target of a tenant that lists no
// clusters; it is the control cluster.
const DefaultCluster = "default"

// Target is one (tenant, cluster) pair: the unit gyre renders and applies.
type Target struct {
	// Tenant owns the objects; they land in namespace cyclone-<Tenant>.
	Tenant string `json:"tenant"`
	// Cluster is the name of the target within the tenant.
	Cluster string `json:"cluster"`
	// TenantDir is the tenant's directory, relative to the repository
	// root; tenants/<Tenant> when empty. It is where the overlay search
	// starts, so a Tenant's spec.path moves every one of its targets.
	TenantDir string `json:"tenantDir,omitempty"`
	// Path, when set, is the exact directory to render, relative to the
	// repository root; it wins over the search.
	Path string `json:"path,omitempty"`
	// PodSecurity is the Pod Security Standards level the target's
	// stages and runs must meet: restricted, baseline or privileged;
	// baseline when empty. It is the Tenant's, since the worker namespace
	// enforces it whatever the YAML says.
	PodSecurity string `json:"podSecurity,omitempty"`
	// ExecutionClusters are the ExecutionClusters the tenant's runs may
	// name in executionContext.cluster, "" standing for the control
	// cluster. Empty when they are not known, as in gyre validate, which
	// has no Tenant objects: any cluster then passes the render and the
	// engine checks it before it creates a Pod.
	ExecutionClusters []string `json:"executionClusters,omitempty"`
	// Scheduling is the Tenant's spec.scheduling, the zero value when it
	// has none. Nil when the Tenant is not known, as in gyre validate:
	// then only what no Tenant allows is refused, and the engine checks
	// the rest before it creates a Pod.
	Scheduling *gyrev1alpha1.TenantScheduling `json:"scheduling,omitempty"`
}

// String returns "tenant/cluster", the way errors and output name a target.
func (t Target) String() string { return t.Tenant + "/" + t.Cluster }

// Namespace returns the namespace every object of the target lands in.
func (t Target) Namespace() string { return convention.Namespace(t.Tenant) }

// WorkerNamespace returns the namespace the target's stage Pods run in on
// every execution cluster.
func (t Target) WorkerNamespace() string { return convention.WorkerNamespace(t.Tenant) }

// PVC returns the name of the tenant PVC that its stage Pods share.
func (t Target) PVC() string { return convention.PVCName(t.Tenant) }

// level is the target's Pod Security level, baseline when it names none.
func (t Target) level() string {
	if t.PodSecurity == "" {
		return podsecurity.DefaultLevel
	}
	return t.PodSecurity
}

func (t Target) tenantDir() string {
	if t.TenantDir != "" {
		return path.Clean(filepath.ToSlash(t.TenantDir))
	}
	return path.Join(TenantsDir, t.Tenant)
}

// candidates lists, in order, the directories that may hold the target's
// overlay. The per-cluster overlay comes first because it usually builds
// on the tenant base (resources: ../base); kustomize refuses an overlay
// nested inside the directory it builds on, so the tenant directory itself
// is only the last resort for tenants without per-cluster overlays.
func (t Target) candidates() []string {
	if t.Path != "" {
		return []string{path.Clean(filepath.ToSlash(t.Path))}
	}
	dir := t.tenantDir()
	return []string{path.Join(dir, t.Cluster), path.Join(dir, "base"), dir}
}

// Resolve returns the directory, relative to root, that the target
// renders: Path when set, else the first that exists of
// <tenant dir>/<cluster>, <tenant dir>/base and <tenant dir>.
func (t Target) Resolve(root string) (string, error) {
	for _, c := range t.candidates() {
		if !filepath.IsLocal(filepath.FromSlash(c)) && c != "." {
			return "", fmt.Errorf("target %s: path %q is outside the repository", t, c)
		}
		fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(c)))
		if err == nil && fi.IsDir() {
			return c, nil
		}
	}
	return "", fmt.Errorf("target %s: none of %s exists", t, strings.Join(t.candidates(), ", "))
}

// TargetsForTenant returns the targets of a Tenant object, one per
// cluster, or the single DefaultCluster target when it lists none. Each
// carries the Tenant's Pod Security level and scheduling, and the
// execution clusters of all its targets: a run of one target may run on
// any of the tenant's clusters, and on no other.
func TargetsForTenant(tenant *gyrev1alpha1.Tenant) []Target {
	clusters := executionClusters(tenant)
	sched := scheduling.Of(tenant)
	if len(tenant.Spec.Clusters) == 0 {
		return []Target{{Tenant: tenant.Name, Cluster: DefaultCluster, TenantDir: tenant.Spec.Path,
			PodSecurity: tenant.Spec.PodSecurity, ExecutionClusters: clusters, Scheduling: sched}}
	}
	targets := make([]Target, 0, len(tenant.Spec.Clusters))
	for _, c := range tenant.Spec.Clusters {
		targets = append(targets, Target{Tenant: tenant.Name, Cluster: c.Name, TenantDir: tenant.Spec.Path, Path: c.Path,
			PodSecurity: tenant.Spec.PodSecurity, ExecutionClusters: clusters, Scheduling: sched})
	}
	sortTargets(targets)
	return targets
}

// executionClusters lists, sorted and once each, the ExecutionClusters a
// Tenant's clusters run on, "" for the control cluster. A Tenant that
// lists no clusters runs on the control cluster alone.
func executionClusters(tenant *gyrev1alpha1.Tenant) []string {
	if len(tenant.Spec.Clusters) == 0 {
		return []string{""}
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range tenant.Spec.Clusters {
		name := ""
		if c.ExecutionClusterRef != nil {
			name = c.ExecutionClusterRef.Name
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Discover lists the targets of a repository laid out the way gyre reads
// it: every directory under tenants/ is a tenant, and its clusters are its
// subdirectories, other than base, that hold a kustomization or YAML. A
// tenant without such subdirectories has the single DefaultCluster target.
// Targets come sorted by tenant, then cluster.
func Discover(root string) ([]Target, error) {
	entries, err := os.ReadDir(filepath.Join(root, TenantsDir))
	if err != nil {
		return nil, fmt.Errorf("discover targets: %w", err)
	}
	var targets []Target
	for _, tenant := range entries {
		if !tenant.IsDir() || strings.HasPrefix(tenant.Name(), ".") {
			continue
		}
		dir := filepath.Join(root, TenantsDir, tenant.Name())
		subs, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("discover targets: %w", err)
		}
		var clusters []string
		for _, sub := range subs {
			if !sub.IsDir() || sub.Name() == "base" || strings.HasPrefix(sub.Name(), ".") {
				continue
			}
			if hasManifests(filepath.Join(dir, sub.Name())) {
				clusters = append(clusters, sub.Name())
			}
		}
		if len(clusters) == 0 {
			clusters = []string{DefaultCluster}
		}
		for _, c := range clusters {
			targets = append(targets, Target{Tenant: tenant.Name(), Cluster: c})
		}
	}
	sortTargets(targets)
	return targets, nil
}

// hasManifests reports whether dir directly holds a kustomization or a
// YAML file.
func hasManifests(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if !e.IsDir() && isYAML(e.Name()) {
			return true
		}
		if e.Name() == "Kustomization" {
			return true
		}
	}
	return false
}

func isYAML(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

func sortTargets(ts []Target) {
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].Tenant != ts[j].Tenant {
			return ts[i].Tenant < ts[j].Tenant
		}
		return ts[i].Cluster < ts[j].Cluster
	})
}
