package podbuild

import (
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// toolsName is the init container that installs the gyre binary into
// toolsVolume, for the workload to run "gyre collect" from.
const (
	toolsName   = "csc-tools"
	toolsVolume = "gyre-tools"
)

// outputArtifacts sends the stage's output artifacts into the attempt's
// staging directory, each as "<name>/<base name of its path>": the file or
// the directory the workload left at its path. The coordinator publishes
// them to "artifacts/<stage>/" once the workload has succeeded, and later
// stages mount that file or directory at their input path, read-only, as
// Cyclone does.
//
// Cyclone copies artifacts out of the finished container with the Docker
// API. Here the first workload container runs its command through "gyre
// collect", which copies them once the command has succeeded. A container
// without a command runs its image's entrypoint, which gyre cannot know:
// it gets a directory of the staging volume at each artifact's path
// instead, so its artifacts must be directories.
func (p *pod) outputArtifacts() error {
	staging := path.Join(p.in.Run.Name, convention.StagingDir(p.name))
	p.artifacts = make([]string, 0, len(p.wl.Outputs.Artifacts))
	collect := len(p.wl.Outputs.Artifacts) > 0 && len(p.spec.Containers[0].Command) > 0
	var collectArgs []string
	for _, a := range p.wl.Outputs.Artifacts {
		p.artifacts = append(p.artifacts, a.Name)
		at := MountPath(a.Path, a.Name)
		if collect {
			collectArgs = append(collectArgs, "--artifact="+a.Name+"="+at)
			continue
		}
		p.mounts = append(p.mounts, corev1.VolumeMount{Name: DataVolume,
			MountPath: at, SubPath: path.Join(staging, a.Name, path.Base(at))})
	}
	if !collect {
		return nil
	}
	tools := path.Dir(convention.ToolsBinary)
	p.spec.Volumes = append(p.spec.Volumes, corev1.Volume{Name: toolsVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	p.spec.InitContainers = append(p.spec.InitContainers, corev1.Container{
		Name:                     toolsName,
		Image:                    p.b.CoordinatorImage,
		Args:                     []string{"install-self", convention.ToolsBinary},
		VolumeMounts:             []corev1.VolumeMount{{Name: toolsVolume, MountPath: tools}},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	})
	ctr := &p.spec.Containers[0]
	ctr.Command = slices.Concat([]string{convention.ToolsBinary, "collect"}, collectArgs, []string{"--"}, ctr.Command)
	ctr.VolumeMounts = append(ctr.VolumeMounts,
		corev1.VolumeMount{Name: toolsVolume, MountPath: tools, ReadOnly: true},
		corev1.VolumeMount{Name: DataVolume, MountPath: convention.StagingMountPath, SubPath: staging})
	return nil
}

// inputArtifacts mounts, read-only, the file or directory each input
// artifact's source stage published.
func (p *pod) inputArtifacts() error {
	stage := p.in.Stage.Name
	for _, a := range p.wl.Inputs.Artifacts {
		source := ArtifactSource(p.in.Item.Artifacts, a)
		from, artifact, ok := strings.Cut(source, "/")
		if !ok {
			return Invalid("stage %s: input artifact %s has no source \"<stage>/<artifact>\" in the workflow", stage, a.Name)
		}
		produced, ok := p.in.ArtifactPaths[source]
		if !ok {
			return Invalid("stage %s: input artifact %s: stage %s has no output artifact %s", stage, a.Name, from, artifact)
		}
		p.mounts = append(p.mounts, corev1.VolumeMount{Name: DataVolume, ReadOnly: true,
			MountPath: MountPath(a.Path, a.Name), SubPath: path.Join(p.in.Run.Name, convention.ArtifactDir(from, artifact), path.Base(produced))})
	}
	return nil
}

// ArtifactSource is "<stage>/<artifact>", where an input artifact comes
// from: the Workflow's binding of the stage, else the Stage's own.
func ArtifactSource(bound []cyclonev1alpha1.ArtifactItem, a cyclonev1alpha1.ArtifactItem) string {
	for _, b := range bound {
		if b.Name == a.Name && b.Source != "" {
			return b.Source
		}
	}
	return a.Source
}
