package podbuild

import (
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/gyreops/gyre/internal/convention"
)

// Names of the sidecars gyre adds to a stage Pod.
const (
	// CoordinatorName is Cyclone's name of the coordinator sidecar.
	CoordinatorName = "csc-co"
	// dindName is Cyclone's name of the Docker daemon sidecar of stages
	// that output images.
	dindName = "csc-dind"
	// dockerSockVolume holds the Docker daemon's socket, which the
	// workload and the image resolvers reach at dockerSockDir, Cyclone's
	// "/var/run"; dockerDataVolume holds the daemon's images and layers.
	dockerSockVolume = "gyre-docker-sock"
	dockerDataVolume = "gyre-docker-data"
	dockerSockDir    = "/var/run"
)

// dind gives a stage whose output resolvers need it the Docker daemon,
// shared with the workload through its socket's volume.
func (p *pod) dind() error {
	if !p.docker {
		return nil
	}
	p.mounts = append(p.mounts, dockerSockMount())
	p.spec.Volumes = append(p.spec.Volumes,
		corev1.Volume{Name: dockerSockVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: dockerDataVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	p.spec.InitContainers = append(p.spec.InitContainers, p.b.dindSidecar())
	return nil
}

// dindSidecar is the Docker daemon of a stage that outputs images, as
// Cyclone gives one: the workload builds with it and Cyclone's image
// resolver pushes from it. It is a native sidecar (an init container that
// keeps running), so the kubelet starts the workload only once the daemon
// answers and stops the daemon when the stage's containers are done; the
// Pod then ends as they did.
func (b Builder) dindSidecar() corev1.Container {
	args := []string{"dockerd", "--host=unix://" + path.Join(dockerSockDir, "docker.sock")}
	if b.DindBip != "" {
		args = append(args, "--bip="+b.DindBip)
	}
	for _, r := range b.DindInsecureRegistries {
		args = append(args, "--insecure-registry="+r)
	}
	return corev1.Container{
		Name:          dindName,
		Image:         b.DindImage,
		Args:          args,
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		// dockerd needs to mount and to set up networks.
		SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
		StartupProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"docker", "info"}}},
			PeriodSeconds:    1,
			FailureThreshold: 120,
		},
		VolumeMounts: []corev1.VolumeMount{
			dockerSockMount(),
			{Name: dockerDataVolume, MountPath: "/var/lib/docker"},
		},
	}
}

func dockerSockMount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: dockerSockVolume, MountPath: dockerSockDir}
}

// coordinator adds the coordinator sidecar, which waits for the workload,
// collects the result files, publishes the output artifacts and tells the
// output resolvers to push. It learns from the engine, through the Pod's
// annotations, that the workload has ended.
func (p *pod) coordinator() error {
	p.spec.Containers = append(p.spec.Containers, corev1.Container{
		Name:  CoordinatorName,
		Image: p.b.CoordinatorImage,
		Args:  []string{"coordinator"},
		Env: append(slices.Clone(p.env),
			corev1.EnvVar{Name: convention.EnvWorkloadContainers, Value: strings.Join(p.workloadNames, ",")},
			corev1.EnvVar{Name: convention.EnvOutputResources, Value: strings.Join(p.outputs, ",")},
			corev1.EnvVar{Name: convention.EnvOutputArtifacts, Value: strings.Join(p.artifacts, ",")},
			corev1.EnvVar{Name: convention.EnvPodName, Value: p.name},
		),
		VolumeMounts: []corev1.VolumeMount{
			{Name: DataVolume, MountPath: convention.CoordinatorDataPath, SubPath: p.in.Run.Name},
			{Name: coordinatorVolume, MountPath: convention.CoordinatorVolumePath},
			{Name: podInfoVolume, MountPath: convention.CoordinatorPodInfoPath, ReadOnly: true},
		},
		TerminationMessagePath:   convention.TerminationLog,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	})
	p.spec.Volumes = append(p.spec.Volumes, corev1.Volume{Name: podInfoVolume, VolumeSource: corev1.VolumeSource{
		DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{
			Path: convention.PodInfoAnnotations, FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}}}}}})
	return nil
}
