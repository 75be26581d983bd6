package exec

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/exec/template"
	"github.com/gyreops/gyre/internal/convention"
)

// The engine gathers what a stage Pod is built from (its Stage, Resources,
// Project, the paths of the artifacts it takes in, the Secrets it refers
// to), and exec/podbuild builds the Pod from that alone.

// buildPod builds the Pod of a stage's current attempt from the Stage, its
// Resources and the Project.
func (r *Engine) buildPod(ctx context.Context, s *scope, st *cyclonev1alpha1.WorkflowRunStatus, name string) (*corev1.Pod, error) {
	run := s.run
	stage := &cyclonev1alpha1.Stage{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: name}, stage); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, r.missing(s, "stage", name, run.Namespace, func(msg string) error { return podbuild.Invalid("%s", msg) })
		}
		return nil, fmt.Errorf("get stage %s: %w", name, err)
	}
	resources := map[string]*cyclonev1alpha1.Resource{}
	if stage.Spec.Pod != nil {
		for _, items := range [][]cyclonev1alpha1.ResourceItem{stage.Spec.Pod.Inputs.Resources, stage.Spec.Pod.Outputs.Resources} {
			for _, it := range items {
				res := &cyclonev1alpha1.Resource{}
				err := r.client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: it.Name}, res)
				if apierrors.IsNotFound(err) {
					if err := r.missing(s, "resource", it.Name, run.Namespace, func(string) error { return nil }); err != nil {
						return nil, err
					}
					continue // past the grace period stagePod names the missing resource
				}
				if err != nil {
					return nil, fmt.Errorf("get resource %s: %w", it.Name, err)
				}
				resources[it.Name] = res
			}
		}
	}
	project, err := r.project(ctx, s)
	if err != nil {
		return nil, err
	}
	item := stageItem(s.workflow, name)
	produced, err := r.artifactPaths(ctx, run.Namespace, stage, item)
	if err != nil {
		return nil, err
	}
	secrets, err := r.referredSecrets(ctx, run, stage, resources)
	if err != nil {
		return nil, err
	}
	withVars := run.DeepCopy()
	withVars.Status.GlobalVariables = st.GlobalVariables
	pod, secret, err := r.builder.StagePod(podbuild.Input{
		Run:           withVars,
		Workflow:      s.workflow,
		Item:          item,
		Stage:         stage,
		Resources:     resources,
		Project:       project,
		Namespace:     s.target.namespace,
		PVC:           s.target.pvc,
		Attempt:       st.Stages[name].Attempt,
		ArtifactPaths: produced,
		Secrets:       secrets,
		PodSecurity:   s.target.level,
	})
	if err != nil {
		return nil, err
	}
	if secret != nil {
		if s.secrets == nil {
			s.secrets = map[string]*corev1.Secret{}
		}
		s.secrets[pod.Name] = secret
	}
	return pod, nil
}

// referredSecrets reads the Secrets of the run's namespace that the
// stage's arguments and the parameters of its resources refer to
// ("${secrets.<namespace>:<name>/...}"). They are read from the API
// server, not cached: the engine watches no Secret. A Secret that does
// not exist is left out, for stagePod to report.
func (r *Engine) referredSecrets(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, stage *cyclonev1alpha1.Stage, resources map[string]*cyclonev1alpha1.Resource) (map[string]*corev1.Secret, error) {
	var values []string
	add := func(items []cyclonev1alpha1.ParameterItem) {
		for _, p := range items {
			if p.Value != nil {
				values = append(values, *p.Value)
			}
		}
	}
	if stage.Spec.Pod != nil {
		for _, a := range stage.Spec.Pod.Inputs.Arguments {
			add([]cyclonev1alpha1.ParameterItem{cyclonev1alpha1.ParameterItem(a)})
		}
	}
	for _, res := range resources {
		add(res.Spec.Parameters)
	}
	for _, configs := range [][]cyclonev1alpha1.ParameterConfig{run.Spec.StageParams, run.Spec.ResourceParams} {
		for _, c := range configs {
			add(c.Parameters)
		}
	}
	names := template.SecretNames(run.Namespace, values...)
	if len(names) == 0 {
		return nil, nil
	}
	secrets := map[string]*corev1.Secret{}
	for _, n := range names {
		if _, done := secrets[n]; done {
			continue
		}
		sec := &corev1.Secret{}
		if err := r.live.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: n}, sec); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("get secret %s: %w", n, err)
		}
		secrets[n] = sec
	}
	return secrets, nil
}

// artifactPaths reads, from the Stages that produce them, the paths of
// the output artifacts stage's input artifacts come from. A source that
// names no Stage or artifact is left out, for stagePod to report.
func (r *Engine) artifactPaths(ctx context.Context, ns string, stage *cyclonev1alpha1.Stage, item cyclonev1alpha1.StageItem) (map[string]string, error) {
	if stage.Spec.Pod == nil || len(stage.Spec.Pod.Inputs.Artifacts) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, a := range stage.Spec.Pod.Inputs.Artifacts {
		source := podbuild.ArtifactSource(item.Artifacts, a)
		from, artifact, ok := strings.Cut(source, "/")
		if !ok {
			continue
		}
		producer := &cyclonev1alpha1.Stage{}
		if err := r.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: from}, producer); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("get stage %s: %w", from, err)
		}
		if producer.Spec.Pod == nil {
			continue
		}
		for _, o := range producer.Spec.Pod.Outputs.Artifacts {
			if o.Name == artifact {
				out[source] = podbuild.MountPath(o.Path, o.Name)
			}
		}
	}
	return out, nil
}

// project returns the run's Project, named by Cyclone's project label on
// the run or its Workflow, or nil.
func (r *Engine) project(ctx context.Context, s *scope) (*cyclonev1alpha1.Project, error) {
	name := s.run.Labels[convention.LabelProject]
	if name == "" {
		name = s.workflow.Labels[convention.LabelProject]
	}
	if name == "" {
		return nil, nil
	}
	p := &cyclonev1alpha1.Project{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: s.run.Namespace, Name: name}, p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get project %s: %w", name, err)
	}
	return p, nil
}
