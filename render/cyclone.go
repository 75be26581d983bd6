package render

import (
	"fmt"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // time zones are checked the same on every machine

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// cycloneIndex holds a target's Cyclone objects by name, for the checks
// that follow references between them.
type cycloneIndex struct {
	stages map[string]bool
	// templates are the Stages labelled stage.cyclone.dev/template.
	templates map[string]bool
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
		templates:     map[string]bool{},
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
			c.idx.templates[o.GetName()] = o.GetLabels()[cyclonev1alpha1.LabelStageTemplate] == "true"
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
		switch {
		case !c.idx.stages[st.Name]:
			c.fail(i, fmt.Sprintf("spec.stages[%d].name", k), "Stage %q is not in this target", st.Name)
		case c.idx.templates[st.Name]:
			// As in Cyclone, a template is a blueprint its users copy
			// into a Stage of their own: gyre applies it, never runs it.
			c.fail(i, fmt.Sprintf("spec.stages[%d].name", k),
				"Stage %q is a template (labelled %s), which is never run; copy it into a Stage without the label and name the copy here",
				st.Name, cyclonev1alpha1.LabelStageTemplate)
		}
	}
	for k, st := range wf.Spec.Stages {
		for d, dep := range st.Depends {
			if _, ok := items[dep]; !ok {
				c.fail(i, fmt.Sprintf("spec.stages[%d].depends[%d]", k, d), "stage %q is not in this workflow", dep)
			}
		}
	}
	if cycle := findCycle(wf.Spec.Stages); cycle != nil {
		c.fail(i, "spec.stages", "stages depend on each other in a cycle: %s", strings.Join(cycle, " → "))
	}
	ancestors := stageAncestors(wf.Spec.Stages)
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

// findCycle returns the stages of one dependency cycle, first stage
// repeated at the end, or nil when the stages form a DAG. Stages are
// visited in order, so the same workflow always reports the same cycle.
func findCycle(stages []cyclonev1alpha1.StageItem) []string {
	deps := map[string][]string{}
	for _, s := range stages {
		deps[s.Name] = s.Depends
	}
	const (
		unvisited = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		switch state[n] {
		case active:
			for k, s := range stack {
				if s == n {
					return append(append([]string{}, stack[k:]...), n)
				}
			}
		case done:
			return nil
		}
		state[n] = active
		stack = append(stack, n)
		for _, d := range deps[n] {
			if _, ok := deps[d]; !ok {
				continue
			}
			if cyc := visit(d); cyc != nil {
				return cyc
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return nil
	}
	for _, s := range stages {
		if cyc := visit(s.Name); cyc != nil {
			return cyc
		}
	}
	return nil
}

// stageAncestors maps each stage to every stage that must finish before
// it. In a cycle, a stage's ancestors are those reached before the walk
// came back to it; the cycle itself is reported separately.
func stageAncestors(stages []cyclonev1alpha1.StageItem) map[string]map[string]bool {
	deps := map[string][]string{}
	for _, s := range stages {
		deps[s.Name] = s.Depends
	}
	memo := map[string]map[string]bool{}
	var of func(n string) map[string]bool
	of = func(n string) map[string]bool {
		if m, ok := memo[n]; ok {
			return m
		}
		m := map[string]bool{}
		memo[n] = m
		for _, d := range deps[n] {
			m[d] = true
			for a := range of(d) {
				m[a] = true
			}
		}
		return m
	}
	for _, s := range stages {
		of(s.Name)
	}
	return memo
}

// cron checks a Cron trigger's schedule the way the trigger controller
// reads it: robfig/cron's standard parser (five fields, descriptors such
// as "@hourly", an optional CRON_TZ= prefix) and an IANA time zone.
func (c *checker) cron(i int, spec cyclonev1alpha1.CronTrigger) {
	if spec.Schedule == "" {
		c.fail(i, "spec.cron.schedule", "a Cron trigger needs a schedule")
	} else if _, err := cron.ParseStandard(spec.Schedule); err != nil {
		c.fail(i, "spec.cron.schedule", "invalid schedule %q: %v", spec.Schedule, err)
	}
	if spec.Timezone != "" {
		if _, err := time.LoadLocation(spec.Timezone); err != nil {
			c.fail(i, "spec.cron.timezone", "unknown time zone %q", spec.Timezone)
		}
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
