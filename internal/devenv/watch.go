package devenv

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// watcher polls the cluster and prints each change a person cares about,
// once: the repository's revision, each target's state, the example run's
// stages, its GC Pod.
type watcher struct {
	c       client.Client
	p       *printer
	repoDir string
	// gitURL is the dev Git server's URL of the example repository; a
	// run on a real node checks it out.
	gitURL string
	// real says stages run real containers, so the run is of the
	// example's demo Workflow, whose images the node has.
	real bool

	seen   map[string]string // what was last printed per subject
	run    string            // the example WorkflowRun, once created
	hinted bool
	gcPods map[string]bool
}

// watch prints progress until ctx ends; with once, it returns when the
// example run has finished and been cleaned up.
func (w *watcher) watch(ctx context.Context, once bool) error {
	w.seen = map[string]string{}
	w.gcPods = map[string]bool{}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := w.poll(ctx, once)
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			if once {
				return fmt.Errorf("gave up waiting for the example run: %w", ctx.Err())
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (w *watcher) poll(ctx context.Context, once bool) (bool, error) {
	w.repository(ctx)
	ready := w.tenants(ctx)
	if ready && w.run == "" {
		if err := w.startRun(ctx); err != nil {
			w.report("run", "Could not start the example run yet: "+err.Error())
		}
	}
	if w.run == "" {
		return false, nil
	}
	run := &cyclonev1alpha1.WorkflowRun{}
	if err := w.c.Get(ctx, client.ObjectKey{Namespace: convention.Namespace(runTenant), Name: w.run}, run); err != nil {
		return false, nil
	}
	w.stages(run)
	w.gc(ctx, run)
	phase := run.Status.Overall.Phase
	if !convention.Finished(phase) || !run.Status.Cleaned {
		return false, nil
	}
	took := "" // from the run's own times, so the line is the same at every poll
	if st := run.Status.Overall; st.StartTime != nil && st.CompletionTime != nil {
		took = " in " + st.CompletionTime.Sub(st.StartTime.Time).String()
	}
	w.report("run/result", fmt.Sprintf("WorkflowRun %s %s%s; its Pods and scratch data are cleaned up", run.Name, phase, took))
	if once {
		if phase != cyclonev1alpha1.StatusSucceeded {
			return true, fmt.Errorf("%w: %s", ErrRunFailed, run.Status.Overall.Message)
		}
		return true, nil
	}
	if !w.hinted {
		w.hinted = true
		w.p.say("The dev loop is live. Change a pipeline: edit a file under %s, then", w.repoDir)
		w.p.say("  git -C %s commit -am 'my change'", w.repoDir)
		w.p.say("and watch gyre apply it here within seconds. Ctrl-C stops; the state is kept for the next gyre dev.")
	}
	return false, nil
}

// report prints msg unless it is what was last printed for subject.
func (w *watcher) report(subject, msg string) {
	if w.seen[subject] == msg {
		return
	}
	w.seen[subject] = msg
	w.p.say("%s", msg)
}

func (w *watcher) repository(ctx context.Context) {
	repo := &gyrev1alpha1.Repository{}
	if err := w.c.Get(ctx, client.ObjectKey{Name: "pipelines"}, repo); err != nil {
		return
	}
	if a := repo.Status.Artifact; a != nil {
		w.report("repo", "Repository pipelines is at "+a.Revision)
	}
	if cond := apimeta.FindStatusCondition(repo.Status.Conditions, "Ready"); cond != nil && cond.Status == metav1.ConditionFalse {
		w.report("repo/error", fmt.Sprintf("Repository pipelines: %s: %s", cond.Reason, cond.Message))
	}
}

// tenants prints each target's state and reports whether every target of
// every tenant is Ready.
func (w *watcher) tenants(ctx context.Context) bool {
	ready := 0
	want := 0
	for _, t := range devTenants {
		want += len(t.clusters)
		tenant := &gyrev1alpha1.Tenant{}
		if err := w.c.Get(ctx, client.ObjectKey{Name: t.name}, tenant); err != nil {
			continue
		}
		for _, target := range tenant.Status.Targets {
			cond := apimeta.FindStatusCondition(target.Conditions, "Ready")
			if cond == nil {
				continue
			}
			objects := 0
			if target.Inventory != nil {
				objects = len(target.Inventory.Entries)
			}
			subject := "tenant/" + t.name + "/" + target.Cluster
			if cond.Status == metav1.ConditionTrue {
				ready++
				w.report(subject, fmt.Sprintf("Tenant %s, cluster %s: Ready, %d objects applied at %s", t.name, target.Cluster, objects, target.LastAppliedRevision))
				continue
			}
			w.report(subject, fmt.Sprintf("Tenant %s, cluster %s: %s: %s", t.name, target.Cluster, cond.Reason, cond.Message))
		}
	}
	return want > 0 && ready == want
}

// The example's pipeline whose images a real node has, and its Git
// source; the tenant's overlays add suffixes to both names.
const (
	demoWorkflow = "demo"
	demoSource   = "pipelines-source"
)

// startRun starts a WorkflowRun of the run tenant's first Workflow, or of
// its demo Workflow on a real node.
func (w *watcher) startRun(ctx context.Context) error {
	ns := convention.Namespace(runTenant)
	var workflows cyclonev1alpha1.WorkflowList
	if err := w.c.List(ctx, &workflows, client.InNamespace(ns)); err != nil {
		return err
	}
	if len(workflows.Items) == 0 {
		return fmt.Errorf("no Workflow in %s", ns)
	}
	names := make([]string, 0, len(workflows.Items))
	for _, wf := range workflows.Items {
		names = append(names, wf.Name)
	}
	sort.Strings(names)
	wf := names[0]
	if w.real {
		i := slices.IndexFunc(names, func(n string) bool { return strings.HasPrefix(n, demoWorkflow) })
		if i < 0 {
			return fmt.Errorf("no Workflow %s* in %s", demoWorkflow, ns)
		}
		wf = names[i]
	}
	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{GenerateName: wf + "-dev-", Namespace: ns, Finalizers: []string{convention.RunFinalizer}},
		Spec: cyclonev1alpha1.WorkflowRunSpec{
			WorkflowRef: &corev1.ObjectReference{Kind: "workflow.cyclone.dev", Name: wf},
			Timeout:     "10m",
		},
	}
	if w.real {
		// The demo checks out the example repository from gyre dev's
		// own Git server, whose address changes at every start.
		var resources cyclonev1alpha1.ResourceList
		if err := w.c.List(ctx, &resources, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, r := range resources.Items {
			if strings.HasPrefix(r.Name, demoSource) {
				run.Spec.ResourceParams = append(run.Spec.ResourceParams, cyclonev1alpha1.ParameterConfig{
					Name: r.Name, Parameters: []cyclonev1alpha1.ParameterItem{{Name: "SCM_URL", Value: ptr.To(w.gitURL)}},
				})
			}
		}
	}
	if err := w.c.Create(ctx, run); err != nil {
		return err
	}
	w.run = run.Name
	w.p.say("Every target is Ready. Started WorkflowRun %s/%s of Workflow %s", ns, run.Name, wf)
	return nil
}

func (w *watcher) stages(run *cyclonev1alpha1.WorkflowRun) {
	names := make([]string, 0, len(run.Status.Stages))
	for name := range run.Status.Stages {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		st := run.Status.Stages[name]
		if st == nil || st.Status.Phase == "" {
			continue
		}
		msg := fmt.Sprintf("  stage %-24s %s", name, st.Status.Phase)
		if st.Pod != nil {
			msg += "  (Pod " + st.Pod.Namespace + "/" + st.Pod.Name + ")"
		}
		if st.Trivial && st.Status.Phase == cyclonev1alpha1.StatusFailed {
			msg += " (trivial: the run goes on without it)"
		}
		if st.Status.Message != "" && st.Status.Phase != cyclonev1alpha1.StatusRunning {
			msg += ": " + st.Status.Message
		}
		if len(st.Outputs) > 0 {
			kv := make([]string, 0, len(st.Outputs))
			for _, o := range st.Outputs {
				kv = append(kv, o.Key+"="+strings.TrimSpace(o.Value))
			}
			msg += "; outputs: " + strings.Join(kv, ", ")
		}
		w.report("stage/"+name, msg)
	}
}

// gc reports the run's GC Pod appearing and going, from its Pod and from
// the run's GC status.
func (w *watcher) gc(ctx context.Context, run *cyclonev1alpha1.WorkflowRun) {
	if g := run.Status.GC; g != nil && g.Phase != "" {
		w.report("gc", fmt.Sprintf("  GC %s", g.Phase))
	}
	var pods corev1.PodList
	if err := w.c.List(ctx, &pods); err != nil {
		return
	}
	for _, pod := range pods.Items {
		if pod.Name == run.Name+"-gc" && !w.gcPods[pod.Name] {
			w.gcPods[pod.Name] = true
			w.p.say("  GC Pod %s/%s created to remove the run's data from the tenant PVC", pod.Namespace, pod.Name)
		}
	}
	for name := range w.gcPods {
		if !slices.ContainsFunc(pods.Items, func(p corev1.Pod) bool { return p.Name == name }) && !strings.HasSuffix(w.seen["gcgone"], name) {
			w.report("gcgone", "  GC Pod removed: "+name)
		}
	}
}
