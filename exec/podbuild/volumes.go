package podbuild

import (
	"fmt"
	"path"

	corev1 "k8s.io/api/core/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// Volumes of a stage Pod.
const (
	// DataVolume is the tenant PVC (or an emptyDir); a run keeps all its
	// scratch data under "<run>/" in it, which is what GC removes.
	DataVolume = "gyre-data"
	// coordinatorVolume is an emptyDir shared by the coordinator with the
	// other containers: workload and input containers write their result
	// files under "results/<container>/", and the coordinator tells output
	// resolvers under "notify/" that the workload has finished.
	coordinatorVolume = "gyre-coordinator"
	// podInfoVolume gives the coordinator the stage Pod's annotations.
	podInfoVolume = "gyre-podinfo"
)

// DataVolumeSource is the data volume: the tenant PVC, or an emptyDir
// when there is none.
func DataVolumeSource(pvc string) corev1.Volume {
	if pvc == "" {
		return corev1.Volume{Name: DataVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	}
	return corev1.Volume{Name: DataVolume, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc}}}
}

// MountPath is where a workload sees a resource or an artifact: its own
// path, else its name under Cyclone's workspace.
func MountPath(p, name string) string {
	if p != "" {
		return p
	}
	return path.Join(convention.HelperWorkspace, name)
}

// resultsMount gives a container its own directory of the coordinator
// volume at ResultsDir, so that result files of different containers never
// clash and the coordinator finds each under "results/<container>/".
func resultsMount(container string) corev1.VolumeMount {
	return corev1.VolumeMount{Name: coordinatorVolume, MountPath: convention.ResultsDir, SubPath: path.Join("results", container)}
}

// presetVolumes mounts the run's preset volumes into the containers of
// their group: the workload's, gyre's sidecars', or all.
func (p *pod) presetVolumes() error {
	for i, pv := range p.in.Run.Spec.PresetVolumes {
		name := fmt.Sprintf("gyre-preset-%d", i)
		vol, ok := pv.Volume(name)
		if !ok {
			return Invalid("preset volume %d has unknown type %q", i, pv.Type)
		}
		p.spec.Volumes = append(p.spec.Volumes, vol)
		mount := corev1.VolumeMount{Name: name, MountPath: pv.MountPath, SubPath: pv.SubPath}
		if pv.Type == cyclonev1alpha1.PresetVolumeTypeSecret || pv.Type == cyclonev1alpha1.PresetVolumeTypeConfigMap {
			mount.SubPath = pv.Path
		}
		for j := range p.spec.Containers {
			workload := j < len(p.workloadNames)
			if pv.ContainerGroup == cyclonev1alpha1.ContainerGroupAll || pv.ContainerGroup == "" ||
				(pv.ContainerGroup == cyclonev1alpha1.ContainerGroupWorkload) == workload {
				p.spec.Containers[j].VolumeMounts = append(p.spec.Containers[j].VolumeMounts, mount)
			}
		}
	}
	return nil
}
