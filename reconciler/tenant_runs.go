package reconciler

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/ssa"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/render"
)

// ReasonRunChanged: a WorkflowRun the target already started has a
// different spec in Git. It is not run again; the target is still
// applied, and the Ready message says which run to rename.
const ReasonRunChanged = "RunChanged"

// maxStartedRuns caps the WorkflowRuns a target remembers. Every entry
// is a run in Git (a run that leaves Git is forgotten), so only a target
// with more runs than this reaches it; 2,000 entries of about 100 bytes
// keep the Tenant's status far below etcd's 1.5 MB object limit beside
// the inventory. A new run past the cap is not created, with a warning,
// rather than created unremembered and run again after its deletion.
const maxStartedRuns = 2000

// runPlan is what a target's apply does with its WorkflowRuns.
type runPlan struct {
	// apply are the target's objects minus the runs already started.
	apply []*unstructured.Unstructured
	// kept are the started runs still in Git, with their first digest.
	kept map[string]string
	// fresh are the runs not started yet, by ID, with their digest.
	fresh map[string]string
	// notes are sentences for the Ready message: runs whose spec
	// changed, runs past the cap.
	notes []string
}

// isWorkflowRun reports whether o is a Cyclone WorkflowRun.
func isWorkflowRun(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == cyclonev1alpha1.GroupName && gvk.Kind == "WorkflowRun"
}

// runDigest is the short sha256 of the canonical JSON of a run's spec:
// encoding/json writes map keys sorted, so the same spec always gives the
// same digest, whatever order the YAML had.
func runDigest(o *unstructured.Unstructured) (string, error) {
	b, err := json.Marshal(o.Object["spec"])
	if err != nil {
		return "", fmt.Errorf("digest spec of WorkflowRun %s/%s: %w", o.GetNamespace(), o.GetName(), err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

// planRuns splits a target's objects into what to apply and the runs it
// leaves alone. A run the target started, with the same spec, is not
// applied: deleted, it stays deleted; alive, its spec and status are the
// engine's. A run with a changed spec is left alone too, and noted. A run
// the inventory lists but started does not was created before gyre
// remembered runs: it counts as started with the spec Git has now. dir is
// where the target's files are, for the notes.
func planRuns(objs []*unstructured.Unstructured, st *gyrev1alpha1.TargetStatus, dir string) (*runPlan, error) {
	started := map[string]string{}
	for _, r := range st.StartedRuns {
		started[r.ID] = r.Digest
	}
	inInventory := map[string]bool{}
	for _, e := range inventoryEntries(st.Inventory) {
		inInventory[e.ID] = true
	}
	p := &runPlan{apply: make([]*unstructured.Unstructured, 0, len(objs)), kept: map[string]string{}, fresh: map[string]string{}}
	var changed, capped []string
	for _, o := range objs {
		if !isWorkflowRun(o) {
			p.apply = append(p.apply, o)
			continue
		}
		id := inventoryID(o.GetNamespace(), o.GetName(), cyclonev1alpha1.GroupName, "WorkflowRun")
		digest, err := runDigest(o)
		if err != nil {
			return nil, err
		}
		switch first, ok := started[id]; {
		case ok && first == digest:
			p.kept[id] = first
		case ok:
			p.kept[id] = first
			changed = append(changed, o.GetNamespace()+"/"+o.GetName())
		case inInventory[id]:
			p.kept[id] = digest
		case len(st.StartedRuns)+len(p.fresh) >= maxStartedRuns:
			capped = append(capped, o.GetNamespace()+"/"+o.GetName())
		default:
			p.fresh[id] = digest
			p.apply = append(p.apply, o)
		}
	}
	if len(changed) > 0 {
		p.notes = append(p.notes, fmt.Sprintf("WorkflowRun %s under %s already ran and its spec changed in Git since; it is not run again: give the run a new name to run it",
			list(changed), dir))
	}
	if len(capped) > 0 {
		p.notes = append(p.notes, fmt.Sprintf("WorkflowRun %s under %s not created: the target already remembers %d runs; remove finished runs from Git",
			list(capped), dir, maxStartedRuns))
	}
	return p, nil
}

// started returns the runs to remember after an apply: the kept ones and
// the fresh ones the apply created. When the apply failed part way, only
// the fresh runs its change set names are known to exist.
func (p *runPlan) started(cs *ssa.ChangeSet, applyErr error) []gyrev1alpha1.StartedRun {
	out := make([]gyrev1alpha1.StartedRun, 0, len(p.kept)+len(p.fresh))
	for id, d := range p.kept {
		out = append(out, gyrev1alpha1.StartedRun{ID: id, Digest: d})
	}
	applied := map[string]bool{}
	if applyErr != nil && cs != nil {
		for _, e := range cs.Entries {
			m := e.ObjMetadata
			applied[inventoryID(m.Namespace, m.Name, m.GroupKind.Group, m.GroupKind.Kind)] = true
		}
	}
	for id, d := range p.fresh {
		if applyErr == nil || applied[id] {
			out = append(out, gyrev1alpha1.StartedRun{ID: id, Digest: d})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) == 0 {
		return nil
	}
	return out
}

// withoutUnstarted returns inv without the fresh runs of p that started
// does not list.
func withoutUnstarted(inv *gyrev1alpha1.Inventory, p *runPlan, started []gyrev1alpha1.StartedRun) *gyrev1alpha1.Inventory {
	ok := map[string]bool{}
	for _, r := range started {
		ok[r.ID] = true
	}
	out := &gyrev1alpha1.Inventory{Entries: make([]gyrev1alpha1.InventoryEntry, 0, len(inv.Entries))}
	for _, e := range inv.Entries {
		if _, fresh := p.fresh[e.ID]; !fresh || ok[e.ID] {
			out.Entries = append(out.Entries, e)
		}
	}
	return out
}

// withoutRuns returns objs without their WorkflowRuns: drift correction
// never puts a run back, as every run it could see was started by the
// full reconcile before it and is the engine's now.
func withoutRuns(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		if !isWorkflowRun(o) {
			out = append(out, o)
		}
	}
	return out
}

// sourceDir names where a target's files are in Git, for messages: its
// exact path, or the tenant directory its overlays are searched under.
func sourceDir(t render.Target) string {
	switch {
	case t.Path != "":
		return path.Clean(t.Path)
	case t.TenantDir != "":
		return path.Clean(t.TenantDir)
	}
	return path.Join(render.TenantsDir, t.Tenant)
}

// warnRuns records a target's run notes as one Warning event, once: only
// when they differ from what its Ready condition already says, so an
// unchanged repository does not repeat it every interval.
func (r *TenantReconciler) warnRuns(t *gyrev1alpha1.Tenant, st *gyrev1alpha1.TargetStatus, target string, notes []string) {
	if len(notes) == 0 {
		return
	}
	msg := strings.Join(notes, "; ")
	if c := apimeta.FindStatusCondition(st.Conditions, meta.ReadyCondition); c != nil && strings.HasSuffix(c.Message, msg) {
		return
	}
	r.event(t, eventWarning, ReasonRunChanged, "Target %s: %s", target, msg)
}
