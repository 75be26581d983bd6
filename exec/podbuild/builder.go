package podbuild

import (
	"fmt"
	"maps"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// Builder builds stage Pods. Its fields are the engine's configuration,
// with its defaults applied; see exec.Config for each.
type Builder struct {
	// ResolverImages maps a Resource type to the image that resolves it;
	// DefaultResolverImage, whose entrypoint is the gyre binary, resolves
	// the others.
	ResolverImages       map[string]string
	DefaultResolverImage string
	// CoordinatorImage runs the coordinator and installs the gyre binary
	// for "gyre collect"; its entrypoint is the gyre binary.
	CoordinatorImage string
	// DindImage runs the Docker daemon of stages that output images;
	// empty gives them none.
	DindImage              string
	DindBip                string
	DindInsecureRegistries []string
	// ServiceAccount runs stage Pods whose Stage and run name none.
	ServiceAccount string
	// IgnorePersistence pulls a persistent Resource into the run's data
	// like any other.
	IgnorePersistence bool
}

// Input is everything a stage Pod is built from.
type Input struct {
	Run       *cyclonev1alpha1.WorkflowRun
	Workflow  *cyclonev1alpha1.Workflow
	Item      cyclonev1alpha1.StageItem
	Stage     *cyclonev1alpha1.Stage
	Resources map[string]*cyclonev1alpha1.Resource
	// Project is nil when the run belongs to no Project.
	Project   *cyclonev1alpha1.Project
	Namespace string
	// PVC is empty when stages get an emptyDir.
	PVC     string
	Attempt int32
	// ArtifactPaths gives the path of every output artifact the stage's
	// input artifacts come from, by "<stage>/<artifact>": an input mounts
	// the file or directory of that name.
	ArtifactPaths map[string]string
	// Secrets are the Secrets of the run's namespace that the stage's
	// arguments and resource parameters refer to, by name.
	Secrets map[string]*corev1.Secret
	// PodSecurity is the Pod Security Standards level of the run's
	// Tenant (internal/podsecurity); empty means the default, baseline.
	PodSecurity string
}

// InvalidError says a stage cannot be turned into a Pod until its spec
// changes; retrying does not help.
type InvalidError struct{ msg string }

// Error says what about the stage must change.
func (e *InvalidError) Error() string { return e.msg }

// Invalid returns an *InvalidError with a formatted message.
func Invalid(format string, args ...any) error {
	return &InvalidError{msg: fmt.Sprintf(format, args...)}
}

// StagePod builds the Pod of one stage attempt, and the run Secret that
// holds the values of its secret references (nil when it has none).
func (b Builder) StagePod(in Input) (*corev1.Pod, *corev1.Secret, error) {
	p := &pod{b: b, in: in, stash: &secretStash{}}
	if err := p.build(); err != nil {
		return nil, nil, err
	}
	obj := p.object()
	if err := p.stash.reveal(obj); err != nil {
		return nil, nil, Invalid("stage %s: %v", in.Stage.Name, err)
	}
	return obj, p.stash.runSecret(in.Run, obj), nil
}

// pod is a stage Pod under construction. The parts run in a fixed order,
// each reading what the earlier ones left: the order is the Pod's, which
// must not change between two builds of one attempt.
type pod struct {
	b     Builder
	in    Input
	stash *secretStash
	// vars are the run's global variables; wl is the Stage's workload
	// with its arguments filled in.
	vars map[string]string
	wl   *cyclonev1alpha1.PodWorkload
	name string
	spec corev1.PodSpec
	// defaults are the requests and limits of containers that set none.
	defaults corev1.ResourceRequirements
	// userInit counts the Stage's own init containers and sidecars,
	// which come first; workloadNames names the Stage's own containers,
	// which come first too.
	userInit      int
	workloadNames []string
	// mounts are added to every workload container.
	mounts []corev1.VolumeMount
	// env is the environment of gyre's own containers.
	env []corev1.EnvVar
	// outputs and artifacts name the stage's output resources and
	// artifacts, for the coordinator.
	outputs, artifacts []string
	// docker is set once an output resolver needs the Docker daemon;
	// dockerUsers are those resolvers.
	docker      bool
	dockerUsers map[string]bool
}

func (p *pod) build() error {
	for _, part := range []func() error{
		p.workload,
		p.inputResources,
		p.outputArtifacts,
		p.inputArtifacts,
		p.outputResources,
		p.dind,
		p.mountWorkload,
		p.coordinator,
		p.sizeHelpers,
		p.presetVolumes,
		p.harden,
	} {
		if err := part(); err != nil {
			return err
		}
	}
	return nil
}

// object is the Pod: the spec the parts built, the Stage's labels and
// annotations, and the engine's, which win.
func (p *pod) object() *corev1.Pod {
	run := p.in.Run
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        p.name,
			Namespace:   p.in.Namespace,
			Labels:      map[string]string{},
			Annotations: map[string]string{},
		},
		Spec: p.spec,
	}
	if p.wl.Meta != nil {
		maps.Copy(obj.Labels, p.wl.Meta.Labels)
		maps.Copy(obj.Annotations, p.wl.Meta.Annotations)
	}
	maps.Copy(obj.Labels, OwnLabels(run, convention.PodKindWorkload))
	maps.Copy(obj.Annotations, map[string]string{
		convention.AnnotationRun:     run.Namespace + "/" + run.Name,
		convention.AnnotationStage:   p.in.Stage.Name,
		convention.AnnotationAttempt: strconv.Itoa(int(p.in.Attempt)),
	})
	return obj
}

// OwnLabels are the labels by which the engine finds a run's Pods of one
// kind (convention.PodKindWorkload or convention.PodKindGC).
func OwnLabels(run *cyclonev1alpha1.WorkflowRun, kind string) map[string]string {
	return map[string]string{
		convention.LabelManagedBy: convention.ManagedByExec,
		convention.LabelRunUID:    string(run.UID),
		convention.LabelPodKind:   kind,
	}
}
