package agent

import (
	"fmt"
	"strings"

	"github.com/gyreops/gyre/internal/convention"
)

// Stage identifies the stage attempt a helper runs for, from the
// environment the engine gives the helper containers.
type Stage struct {
	// Run and Namespace name the WorkflowRun on the control cluster.
	Run, Namespace string
	// Name is the stage's name.
	Name string
	// Pod names the stage Pod of this attempt, whose staging directory
	// holds the attempt's output artifacts.
	Pod string
	// Workload lists the workload containers, in the Pod's order.
	Workload []string
	// Artifacts lists the stage's output artifacts.
	Artifacts []string
}

// StageFromEnv reads a Stage through getenv (os.Getenv in a Pod) and says
// which variable is missing.
func StageFromEnv(getenv func(string) string) (Stage, error) {
	s := Stage{
		Run:       getenv(convention.EnvRunName),
		Namespace: getenv(convention.EnvRunNamespace),
		Name:      getenv(convention.EnvStageName),
		Pod:       getenv(convention.EnvPodName),
		Workload:  splitList(getenv(convention.EnvWorkloadContainers)),
		Artifacts: splitList(getenv(convention.EnvOutputArtifacts)),
	}
	for _, v := range []struct{ name, value string }{
		{convention.EnvRunName, s.Run}, {convention.EnvRunNamespace, s.Namespace}, {convention.EnvStageName, s.Name},
		{convention.EnvPodName, s.Pod},
	} {
		if v.value == "" {
			return s, fmt.Errorf("environment variable %s is not set; the coordinator runs in a stage Pod built by gyre", v.name)
		}
	}
	if len(s.Workload) == 0 {
		return s, fmt.Errorf("environment variable %s lists no workload container", convention.EnvWorkloadContainers)
	}
	return s, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
