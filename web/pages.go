package web

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// API groups and resources whose get right the pages check.
const (
	gyreGroup    = "gyre.dev"
	cycloneGroup = "cyclone.dev"
)

// readyOf is the Ready condition's status and message ("Unknown" when
// there is none yet).
func readyOf(conds []metav1.Condition) (string, string) {
	c := apimeta.FindStatusCondition(conds, "Ready")
	if c == nil {
		return string(metav1.ConditionUnknown), ""
	}
	return string(c.Status), c.Message
}

// visibleCluster keeps the cluster-scoped objects the viewer may get: all
// of them with the right to get every one, else those the viewer may get
// by name.
func visibleCluster[T client.Object](r *http.Request, v *viewer, resource string, items []T) ([]T, error) {
	all, err := v.may(r.Context(), gyreGroup, resource, "", "")
	if err != nil || all {
		return items, err
	}
	var out []T
	for _, it := range items {
		ok, err := v.may(r.Context(), gyreGroup, resource, "", it.GetName())
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, it)
		}
	}
	return out, nil
}

type tenantRow struct {
	Name, Ready, Revision, Error string
	Objects                      int
	Targets                      []targetCell
}

type targetCell struct {
	Cluster, Ready, Revision string
	Objects                  int
}

func (s *Server) tenants(w http.ResponseWriter, r *http.Request, v *viewer) {
	var list gyrev1alpha1.TenantList
	if err := s.reader.List(r.Context(), &list); err != nil {
		s.fail(w, r, err, "listing Tenants")
		return
	}
	items := make([]*gyrev1alpha1.Tenant, len(list.Items))
	for i := range list.Items {
		items[i] = &list.Items[i]
	}
	items, err := visibleCluster(r, v, "tenants", items)
	if err != nil {
		s.fail(w, r, err, "checking your access to Tenants")
		return
	}
	slices.SortFunc(items, func(a, b *gyrev1alpha1.Tenant) int { return strings.Compare(a.Name, b.Name) })
	rows := make([]tenantRow, 0, len(items))
	for _, t := range items {
		ready, msg := readyOf(t.Status.Conditions)
		row := tenantRow{Name: t.Name, Ready: ready, Revision: t.Status.LastAppliedRevision, Objects: t.Status.Objects}
		if ready != string(metav1.ConditionTrue) {
			row.Error = msg
		}
		for _, ts := range t.Status.Targets {
			cell := targetCell{Cluster: ts.Cluster, Revision: ts.LastAppliedRevision}
			cell.Ready, _ = readyOf(ts.Conditions)
			if ts.Inventory != nil {
				cell.Objects = len(ts.Inventory.Entries)
			}
			row.Targets = append(row.Targets, cell)
		}
		slices.SortFunc(row.Targets, func(a, b targetCell) int { return strings.Compare(a.Cluster, b.Cluster) })
		rows = append(rows, row)
	}
	s.renderFor(w, r, http.StatusOK, "tenants.html", v, rows)
}

type repositoryRow struct {
	Name, URL, Ref, Revision, Ready, Message, Fetched string
}

// refOf says what a Repository follows, as a person writes it.
func refOf(ref *gyrev1alpha1.GitRef) string {
	switch {
	case ref == nil:
		return "default branch"
	case ref.Commit != "":
		return "commit " + ref.Commit
	case ref.SemVer != "":
		return "semver " + ref.SemVer
	case ref.Tag != "":
		return "tag " + ref.Tag
	case ref.Branch != "":
		return "branch " + ref.Branch
	}
	return "default branch"
}

func (s *Server) repositories(w http.ResponseWriter, r *http.Request, v *viewer) {
	var list gyrev1alpha1.RepositoryList
	if err := s.reader.List(r.Context(), &list); err != nil {
		s.fail(w, r, err, "listing Repositories")
		return
	}
	items := make([]*gyrev1alpha1.Repository, len(list.Items))
	for i := range list.Items {
		items[i] = &list.Items[i]
	}
	items, err := visibleCluster(r, v, "repositories", items)
	if err != nil {
		s.fail(w, r, err, "checking your access to Repositories")
		return
	}
	slices.SortFunc(items, func(a, b *gyrev1alpha1.Repository) int { return strings.Compare(a.Name, b.Name) })
	now := s.o.Clock.Now()
	rows := make([]repositoryRow, 0, len(items))
	for _, repo := range items {
		row := repositoryRow{Name: repo.Name, URL: repo.Spec.URL, Ref: refOf(repo.Spec.Ref)}
		row.Ready, row.Message = readyOf(repo.Status.Conditions)
		if a := repo.Status.Artifact; a != nil {
			row.Revision = a.Revision
			row.Fetched = Age(a.LastUpdateTime.Time, now)
		}
		rows = append(rows, row)
	}
	s.renderFor(w, r, http.StatusOK, "repositories.html", v, rows)
}

// tenantOfNamespace is the Tenant owning a control-cluster namespace
// ("cyclone-<tenant>"), as the engine finds it; "" for none.
func tenantOfNamespace(ns string) string {
	t, ok := strings.CutPrefix(ns, convention.Namespace(""))
	if !ok || strings.HasSuffix(t, "-worker") {
		return ""
	}
	return t
}

// workflowOf is the name of the run's Workflow.
func workflowOf(run *cyclonev1alpha1.WorkflowRun) string {
	if run.Spec.WorkflowRef == nil {
		return ""
	}
	return run.Spec.WorkflowRef.Name
}

// phaseOf is the run's or stage's phase, Pending before it has one.
func phaseOf(st cyclonev1alpha1.Status) string {
	if st.Phase == "" {
		return string(cyclonev1alpha1.StatusPending)
	}
	return string(st.Phase)
}

// phases lists every phase, in the order a run goes through them.
var phases = []string{
	string(cyclonev1alpha1.StatusPending),
	string(cyclonev1alpha1.StatusRunning),
	string(cyclonev1alpha1.StatusWaiting),
	string(cyclonev1alpha1.StatusSucceeded),
	string(cyclonev1alpha1.StatusFailed),
	string(cyclonev1alpha1.StatusCancelled),
}

// runTiming is when a run or stage started and how long it ran, or has
// been running.
func runTiming(st cyclonev1alpha1.Status, now time.Time) (started, took string) {
	if st.StartTime == nil {
		return "", ""
	}
	end := now
	if st.CompletionTime != nil {
		end = st.CompletionTime.Time
	}
	return Age(st.StartTime.Time, now), Duration(end.Sub(st.StartTime.Time))
}

// maxRuns caps the rows of the runs page: the history of a busy cluster
// would make a page too long to load or read; the filter narrows it.
const maxRuns = 500

type runRow struct {
	Namespace, Name, Tenant, Workflow, Phase, Started, Took string
}

type runsData struct {
	Rows []runRow
	// Filter is the query; the choices are those of the runs the viewer
	// may see, sorted.
	Tenant, Workflow, Phase string
	Tenants, Workflows      []string
	Phases                  []string
	// Matched counts the runs the filter matches; Rows holds the newest
	// maxRuns of them.
	Matched int
	// Guarded is true when runs are shown by the viewer's rights. It
	// says no more: how many namespaces are left out would tell a tenant
	// about the others.
	Guarded bool
}

func (s *Server) runs(w http.ResponseWriter, r *http.Request, v *viewer) {
	var list cyclonev1alpha1.WorkflowRunList
	if err := s.reader.List(r.Context(), &list); err != nil {
		s.fail(w, r, err, "listing WorkflowRuns")
		return
	}
	// One review per namespace, not per run: a namespace holds a tenant's
	// runs, and RBAC grants them together.
	allowed := map[string]bool{}
	for i := range list.Items {
		ns := list.Items[i].Namespace
		if _, seen := allowed[ns]; seen {
			continue
		}
		ok, err := v.may(r.Context(), cycloneGroup, "workflowruns", ns, "")
		if err != nil {
			s.fail(w, r, err, "checking your access to WorkflowRuns")
			return
		}
		allowed[ns] = ok
	}
	q := r.URL.Query()
	d := runsData{Tenant: q.Get("tenant"), Workflow: q.Get("workflow"), Phase: q.Get("phase"), Phases: phases, Guarded: v.user != nil}
	tenantSet, workflowSet := map[string]bool{}, map[string]bool{}
	var visible []*cyclonev1alpha1.WorkflowRun
	for i := range list.Items {
		run := &list.Items[i]
		if !allowed[run.Namespace] {
			continue
		}
		tenant, workflow := tenantOfNamespace(run.Namespace), workflowOf(run)
		if tenant != "" {
			tenantSet[tenant] = true
		}
		if workflow != "" {
			workflowSet[workflow] = true
		}
		if (d.Tenant != "" && tenant != d.Tenant) || (d.Workflow != "" && workflow != d.Workflow) || (d.Phase != "" && phaseOf(run.Status.Overall) != d.Phase) {
			continue
		}
		visible = append(visible, run)
	}
	sortRuns(visible)
	d.Matched = len(visible)
	now := s.o.Clock.Now()
	for _, run := range visible[:min(len(visible), maxRuns)] {
		row := runRow{
			Namespace: run.Namespace, Name: run.Name, Tenant: tenantOfNamespace(run.Namespace),
			Workflow: workflowOf(run), Phase: phaseOf(run.Status.Overall),
		}
		row.Started, row.Took = runTiming(run.Status.Overall, now)
		d.Rows = append(d.Rows, row)
	}
	d.Tenants, d.Workflows = sortedKeys(tenantSet), sortedKeys(workflowSet)
	s.renderFor(w, r, http.StatusOK, "runs.html", v, d)
}

// sortRuns puts the newest runs first, and runs created in the same
// second (the API server's resolution) by namespace and name.
func sortRuns(runs []*cyclonev1alpha1.WorkflowRun) {
	slices.SortFunc(runs, func(a, b *cyclonev1alpha1.WorkflowRun) int {
		return cmp.Or(
			b.CreationTimestamp.Compare(a.CreationTimestamp.Time),
			strings.Compare(a.Namespace, b.Namespace),
			strings.Compare(a.Name, b.Name),
		)
	})
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
