package render

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// cycloneIndex holds a target's Cyclone objects by name, for the checks
// that follow references between them.
type cycloneIndex struct {
	stages    map[string]bool
	resources map[string]bool
	// resourceTypes maps each Resource to its spec.type, such as Image.
	resourceTypes map[string]string
	workflows     map[string]*cyclonev1alpha1.Workflow
}

// checker runs Cyclone's semantic rules over one target's objects: the
// rules a schema cannot express because they span objects.
type checker struct {
	target  Target
	objs    []*unstructured.Unstructured
	origins []string
	idx     cycloneIndex
	errs    []Error
	// warns are what the Tenant's level stops at run time, though the
	// YAML is valid.
	warns []Error
}

// checkCyclone returns the errors of a target's Cyclone objects, and the
// warnings about them.
func checkCyclone(objs []*unstructured.Unstructured, origins []string, t Target) ([]Error, []Error) {
	c := &checker{target: t, objs: objs, origins: origins, idx: cycloneIndex{
		stages:        map[string]bool{},
		resources:     map[string]bool{},
		resourceTypes: map[string]string{},
		workflows:     map[string]*cyclonev1alpha1.Workflow{},
	}}
	c.duplicates()
	typed := make([]runtime.Object, len(objs))
	for i, o := range objs {
		if o.GroupVersionKind().Group != cyclonev1alpha1.GroupVersion.Group {
			continue
		}
		var obj runtime.Object
		switch o.GetKind() {
		case "Stage":
			c.idx.stages[o.GetName()] = true
			obj = &cyclonev1alpha1.Stage{}
		case "Resource":
			c.idx.resources[o.GetName()] = true
			c.idx.resourceTypes[o.GetName()], _, _ = unstructured.NestedString(o.Object, "spec", "type")
			continue
		case "Workflow":
			obj = &cyclonev1alpha1.Workflow{}
		case "WorkflowTrigger":
			obj = &cyclonev1alpha1.WorkflowTrigger{}
		case "WorkflowRun":
			obj = &cyclonev1alpha1.WorkflowRun{}
		default:
			continue
		}
		// The schema has already vetted the shape; an object that does
		// not convert has schema errors of its own and is skipped here.
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, obj); err != nil {
			continue
		}
		typed[i] = obj
		if wf, ok := obj.(*cyclonev1alpha1.Workflow); ok {
			c.idx.workflows[wf.Name] = wf
		}
	}
	for i, obj := range typed {
		switch obj := obj.(type) {
		case *cyclonev1alpha1.Stage:
			c.stage(i, obj)
			c.stagePolicy(i, obj)
		case *cyclonev1alpha1.Workflow:
			c.workflow(i, obj)
		case *cyclonev1alpha1.WorkflowTrigger:
			if obj.Spec.Type == cyclonev1alpha1.TriggerTypeCron {
				c.cron(i, obj.Spec.Cron)
			}
			c.runSpec(i, &obj.Spec.WorkflowRunSpec)
			c.runPolicy(i, &obj.Spec.WorkflowRunSpec)
		case *cyclonev1alpha1.WorkflowRun:
			c.runSpec(i, &obj.Spec)
			c.runPolicy(i, &obj.Spec)
		}
		c.outbound(i, obj)
	}
	return c.errs, c.warns
}

func (c *checker) fail(i int, field, format string, args ...any) {
	c.errs = append(c.errs, c.problem(i, field, format, args...))
}

// warn records what will go wrong at run time without stopping the
// render.
func (c *checker) warn(i int, field, format string, args ...any) {
	c.warns = append(c.warns, c.problem(i, field, format, args...))
}

func (c *checker) problem(i int, field, format string, args ...any) Error {
	o := c.objs[i]
	return Error{File: c.origins[i], Kind: o.GetKind(), Name: o.GetName(), Field: field, Message: fmt.Sprintf(format, args...)}
}

// duplicates reports every object whose identity (group, kind,
// namespace, name) an earlier object already has. kustomize catches most,
// but not two objects that only differed by namespace before tenancy put
// them in one, nor two versions of one kind.
func (c *checker) duplicates() {
	first := map[string]int{}
	for i, o := range c.objs {
		id := strings.Join([]string{o.GroupVersionKind().Group, o.GetKind(), o.GetNamespace(), o.GetName()}, "/")
		if j, dup := first[id]; dup {
			c.fail(i, "metadata.name", "duplicate object: %s/%s is also defined in %s", o.GetKind(), o.GetName(), c.origins[j])
			continue
		}
		first[id] = i
	}
}

func (c *checker) stage(i int, s *cyclonev1alpha1.Stage) {
	if s.Labels[cyclonev1alpha1.LabelStageTemplate] == "true" || s.Spec.Pod == nil {
		return // a template names resource types, filled in by its users
	}
	check := func(field string, items []cyclonev1alpha1.ResourceItem) {
		for k, r := range items {
			if r.Name != "" && !c.idx.resources[r.Name] {
				c.fail(i, fmt.Sprintf("%s[%d].name", field, k), "Resource %q is not in this target", r.Name)
			}
		}
	}
	check("spec.pod.inputs.resources", s.Spec.Pod.Inputs.Resources)
	check("spec.pod.outputs.resources", s.Spec.Pod.Outputs.Resources)
}

func (c *checker) workflow(i int, wf *cyclonev1alpha1.Workflow) {
	items := map[string]int{}
	for k, st := range wf.Spec.Stages {
		items[st.Name] = k
		if !c.idx.stages[st.Name] {
			c.fail(i, fmt.Sprintf("spec.stages[%d].name", k), "Stage %q is not in this target", st.Name)
		}
	}
	for k, st := range wf.Spec.Stages {
		for d, dep := range st.Depends {
			if _, ok := items[dep]; !ok {
				c.fail(i, fmt.Sprintf("spec.stages[%d].depends[%d]", k, d), "stage %q is not in this workflow", dep)
			}
		}
	}
	for k, st := range wf.Spec.Stages {
		if _, err := convention.ParseTimeout(st.Timeout); err != nil {
			c.fail(i, fmt.Sprintf("spec.stages[%d].timeout", k), "stage %q: %v", st.Name, err)
		}
	}
	if cycle := convention.Cycle(wf.Spec.Stages); cycle != nil {
		c.fail(i, "spec.stages", "stages depend on each other in a cycle: %s", strings.Join(cycle, " → "))
	}
	ancestors := convention.Ancestors(wf.Spec.Stages)
	for k, st := range wf.Spec.Stages {
		for a, art := range st.Artifacts {
			field := fmt.Sprintf("spec.stages[%d].artifacts[%d].source", k, a)
			stage, name, ok := strings.Cut(art.Source, "/")
			switch {
			case art.Source == "":
				continue
			case !ok || stage == "" || name == "":
				c.fail(i, field, "source %q is not <stage>/<artifact>", art.Source)
			case !hasKey(items, stage):
				c.fail(i, field, "stage %q is not in this workflow", stage)
			case !ancestors[st.Name][stage]:
				c.fail(i, field, "stage %q does not run before %q; add it to depends", stage, st.Name)
			}
		}
	}
}

func hasKey[V any](m map[string]V, k string) bool { _, ok := m[k]; return ok }

// cron checks a Cron trigger's schedule with the parser the trigger
// controller runs it with.
func (c *checker) cron(i int, spec cyclonev1alpha1.CronTrigger) {
	_, err := convention.ParseSchedule(spec)
	for _, fe := range convention.FieldErrors(err) {
		c.fail(i, fe.Field, "%v", fe.Err)
	}
}

// runSpec checks what a WorkflowRun, or the runs a WorkflowTrigger
// starts, refer to.
func (c *checker) runSpec(i int, spec *cyclonev1alpha1.WorkflowRunSpec) {
	ref := spec.WorkflowRef
	if ref == nil || ref.Name == "" {
		c.fail(i, "spec.workflowRef.name", "a Workflow to run is required")
		return
	}
	if ref.Namespace != "" && ref.Namespace != c.target.Namespace() {
		c.fail(i, "spec.workflowRef.namespace", "namespace %q is not the tenant's namespace %q", ref.Namespace, c.target.Namespace())
	}
	wf := c.idx.workflows[ref.Name]
	if wf == nil {
		c.fail(i, "spec.workflowRef.name", "Workflow %q is not in this target", ref.Name)
	}
	inWorkflow := map[string]bool{}
	if wf != nil {
		for _, s := range wf.Spec.Stages {
			inWorkflow[s.Name] = true
		}
	}
	stageRef := func(field, name string) {
		switch {
		case !c.idx.stages[name]:
			c.fail(i, field, "Stage %q is not in this target", name)
		case wf != nil && !inWorkflow[name]:
			c.fail(i, field, "stage %q is not in Workflow %q", name, wf.Name)
		}
	}
	for k, p := range spec.ResourceParams {
		if !c.idx.resources[p.Name] {
			c.fail(i, fmt.Sprintf("spec.resources[%d].name", k), "Resource %q is not in this target", p.Name)
		}
	}
	for k, p := range spec.StageParams {
		stageRef(fmt.Sprintf("spec.stages[%d].name", k), p.Name)
	}
	for k, s := range spec.StartStages {
		stageRef(fmt.Sprintf("spec.startStages[%d]", k), s)
	}
	for k, s := range spec.EndStages {
		stageRef(fmt.Sprintf("spec.endStages[%d]", k), s)
	}
	if _, err := convention.ParseTimeout(spec.Timeout); err != nil {
		c.fail(i, "spec.timeout", "%v", err)
	}
	c.runStages(i, wf, spec)
}

// runStages checks that the engine can start the run: the stages it
// selects from its Workflow form a DAG with at least one stage. The
// engine starts runs with the same function, so a run that passes here
// is not failed with InvalidWorkflow after it is applied.
func (c *checker) runStages(i int, wf *cyclonev1alpha1.Workflow, spec *cyclonev1alpha1.WorkflowRunSpec) {
	if wf == nil {
		return
	}
	for _, st := range wf.Spec.Stages {
		for _, d := range st.Depends {
			if !hasKey(c.inWorkflow(wf), d) {
				return // reported on the Workflow
			}
		}
	}
	if convention.Cycle(wf.Spec.Stages) != nil {
		return // reported on the Workflow
	}
	for _, names := range [][]string{spec.StartStages, spec.EndStages} {
		for _, n := range names {
			if !hasKey(c.inWorkflow(wf), n) {
				return // reported above
			}
		}
	}
	if _, err := convention.SelectStages(wf.Spec.Stages, spec.StartStages, spec.EndStages); err != nil {
		c.fail(i, "spec.workflowRef.name", "Workflow %q cannot run: %v", wf.Name, err)
	}
}

// inWorkflow is the set of a Workflow's stage names.
func (c *checker) inWorkflow(wf *cyclonev1alpha1.Workflow) map[string]bool {
	m := make(map[string]bool, len(wf.Spec.Stages))
	for _, s := range wf.Spec.Stages {
		m[s.Name] = true
	}
	return m
}

// sortErrors orders errors by file, kind, name, field and message, so
// that output is stable whatever order the checks ran in.
func sortErrors(errs []Error) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i], errs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Message < b.Message
	})
}
