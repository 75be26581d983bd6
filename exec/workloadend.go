package exec

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/internal/convention"
)

// workloadContainers lists the workload containers of a stage Pod, which
// its coordinator waits for.
func workloadContainers(pod *corev1.Pod) []string {
	for _, ctr := range pod.Spec.Containers {
		if ctr.Name != podbuild.CoordinatorName {
			continue
		}
		for _, e := range ctr.Env {
			if e.Name == convention.EnvWorkloadContainers {
				return strings.Split(e.Value, ",")
			}
		}
	}
	return nil
}

// workloadExit returns the exit codes of pod's workload containers once
// all of them have terminated.
func workloadExit(pod *corev1.Pod) (map[string]int32, bool) {
	names := workloadContainers(pod)
	if len(names) == 0 {
		return nil, false
	}
	codes := make(map[string]int32, len(names))
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && slices.Contains(names, cs.Name) {
			codes[cs.Name] = t.ExitCode
		}
	}
	return codes, len(codes) == len(names)
}

// signalWorkloadEnds tells the coordinator of each running stage Pod whose
// workload has ended how it ended (convention.WorkloadExitAnnotation). A stage Pod
// has no API access of its own, so the engine, which watches its Pods
// anyway, passes on what only the API server knows.
func (r *Engine) signalWorkloadEnds(ctx context.Context, s *scope, pods map[string]*corev1.Pod) error {
	for _, name := range sortedPods(pods) {
		pod := pods[name]
		if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
			continue
		}
		if _, done := pod.Annotations[convention.WorkloadExitAnnotation]; done {
			continue
		}
		codes, ended := workloadExit(pod)
		if !ended {
			continue
		}
		value, err := json.Marshal(codes)
		if err != nil {
			return err
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{convention.WorkloadExitAnnotation: string(value)}}})
		if err != nil {
			return err
		}
		if err := s.target.client.Patch(ctx, pod.DeepCopy(), client.RawPatch(types.MergePatchType, patch)); err != nil {
			return fmt.Errorf("tell pod %s/%s its workload ended: %w", pod.Namespace, pod.Name, err)
		}
	}
	return nil
}

func sortedPods(pods map[string]*corev1.Pod) []string {
	names := make([]string, 0, len(pods))
	for n := range pods {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// copyOutputs takes the outputs the coordinator left in its termination
// message into the stage's status. A message that does not parse, such as
// the coordinator's own error, is no outputs.
func copyOutputs(ss *cyclonev1alpha1.StageStatus, pod *corev1.Pod) {
	for _, cs := range pod.Status.ContainerStatuses {
		t := cs.State.Terminated
		if cs.Name != podbuild.CoordinatorName || t == nil || t.Message == "" {
			continue
		}
		var outputs []cyclonev1alpha1.KeyValue
		if err := json.Unmarshal([]byte(t.Message), &outputs); err != nil {
			return
		}
		if !slices.Equal(ss.Outputs, outputs) {
			ss.Outputs = outputs
		}
	}
}
