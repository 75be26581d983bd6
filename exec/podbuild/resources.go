package podbuild

import (
	"fmt"
	"path"
	"slices"

	corev1 "k8s.io/api/core/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/template"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
)

// sharedOutputs is the directory, under a stage's outputs, of its output
// resources that name no path.
const sharedOutputs = "_cyclone"

// inputResources adds an init container per input resource that pulls it
// into "data/" of the resource's directory, where the workload sees it at
// the resource's path. The directory is the run's, or for a persistent
// resource a path in its own PVC that outlives the run.
func (p *pod) inputResources() error {
	run := p.in.Run
	for i, item := range p.wl.Inputs.Resources {
		res, params, err := p.resourceParams(item)
		if err != nil {
			return err
		}
		volume, sub := DataVolume, path.Join(run.Name, "resources", item.Name)
		if pv := res.Spec.Persistent; pv != nil && !p.b.IgnorePersistence {
			if pv.PVC == "" {
				return Invalid("stage %s: resource %s: spec.persistent.pvc is empty", p.in.Stage.Name, item.Name)
			}
			volume, sub = fmt.Sprintf("gyre-persistent-%d", i), pv.Path
			p.spec.Volumes = append(p.spec.Volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pv.PVC}}})
			params = pullPolicy(params, pv.PullPolicy)
		}
		ctrName := convention.ShortName("i-" + item.Name)
		p.spec.InitContainers = append(p.spec.InitContainers, corev1.Container{
			Name:                     ctrName,
			Image:                    p.b.resourceResolver(res),
			Args:                     p.b.resolverArgs(res, "pull"),
			Env:                      append(slices.Clone(p.env), params...),
			TerminationMessagePolicy: p.b.resolverMessagePolicy(res),
			VolumeMounts: []corev1.VolumeMount{
				{Name: volume, MountPath: convention.HelperWorkspace, SubPath: sub},
				resultsMount(ctrName),
			},
		})
		p.mounts = append(p.mounts, corev1.VolumeMount{Name: volume, MountPath: MountPath(item.Path, item.Name), SubPath: path.Join(sub, "data")})
	}
	return nil
}

// pullPolicy sets a persistent resource's PULL_POLICY, which Cyclone's own
// resolvers read: spec.persistent.pullPolicy, else the resource's own
// PULL_POLICY parameter, else Always.
func pullPolicy(params []corev1.EnvVar, policy cyclonev1alpha1.ResourcePullPolicy) []corev1.EnvVar {
	i := slices.IndexFunc(params, func(e corev1.EnvVar) bool { return e.Name == convention.EnvPullPolicy })
	switch {
	case policy != "" && i >= 0:
		params[i].Value = string(policy)
	case policy != "":
		params = append(params, corev1.EnvVar{Name: convention.EnvPullPolicy, Value: string(policy)})
	case i < 0:
		params = append(params, corev1.EnvVar{Name: convention.EnvPullPolicy, Value: string(cyclonev1alpha1.PullAlways)})
	}
	return params
}

// outputResources adds a sidecar resolver per output resource, which
// pushes it once the coordinator says the workload is done. An image
// output also gets the stage's Docker daemon, which only a Tenant that
// allows privileged Pods may have.
func (p *pod) outputResources() error {
	run, stage := p.in.Run, p.in.Stage
	// dockerUsers are the image resolvers that talk to the Docker daemon,
	// whose socket belongs to root.
	p.dockerUsers = map[string]bool{}
	for _, item := range p.wl.Outputs.Resources {
		res, params, err := p.resourceParams(item)
		if err != nil {
			return err
		}
		// An output without a path is in Cyclone's one directory of
		// outputs, /cyclone/resources, which its resolvers all see.
		sub := path.Join(run.Name, "outputs", stage.Name, item.Name)
		if item.Path == "" {
			sub = path.Join(run.Name, "outputs", stage.Name, sharedOutputs)
		}
		p.outputs = append(p.outputs, item.Name)
		ctr := corev1.Container{
			Name:                     convention.ShortName("o-" + item.Name),
			Image:                    p.b.resourceResolver(res),
			Args:                     p.b.resolverArgs(res, "push"),
			Env:                      append(slices.Clone(p.env), params...),
			TerminationMessagePolicy: p.b.resolverMessagePolicy(res),
			VolumeMounts: []corev1.VolumeMount{
				{Name: DataVolume, MountPath: path.Join(convention.HelperWorkspace, "data"), SubPath: sub},
				{Name: coordinatorVolume, MountPath: path.Join(convention.HelperWorkspace, "notify"), SubPath: "notify"},
			},
		}
		if res.Spec.Type == cyclonev1alpha1.ImageResourceType && p.b.DindImage != "" {
			// Cyclone's image resolver pushes what the workload built
			// with the stage's Docker daemon, which runs privileged: only
			// a Tenant that allows privileged Pods gets one.
			if SecurityLevel(p.in.PodSecurity) != podsecurity.Privileged {
				tenant, _ := convention.TenantOf(run.Namespace)
				return Invalid("stage %s outputs image resource %s: it needs a privileged Docker daemon; "+
					"set podSecurity: privileged on Tenant %s to allow it, or build images without Docker (gyre controller --no-dind)",
					stage.Name, item.Name, tenant)
			}
			p.docker = true
			p.dockerUsers[ctr.Name] = true
			ctr.VolumeMounts = append(ctr.VolumeMounts, dockerSockMount())
		}
		p.spec.Containers = append(p.spec.Containers, ctr)
		if item.Path != "" {
			p.mounts = append(p.mounts, corev1.VolumeMount{Name: DataVolume, MountPath: item.Path, SubPath: sub})
		} else if !slices.ContainsFunc(p.mounts, func(m corev1.VolumeMount) bool { return m.MountPath == convention.OutputResourcesDir }) {
			p.mounts = append(p.mounts, corev1.VolumeMount{Name: DataVolume, MountPath: convention.OutputResourcesDir, SubPath: sub})
		}
	}
	return nil
}

// resourceParams finds the Resource of a stage's resource item and returns
// its parameters as environment variables: the Resource's own, overridden
// by the run's.
func (p *pod) resourceParams(item cyclonev1alpha1.ResourceItem) (*cyclonev1alpha1.Resource, []corev1.EnvVar, error) {
	res := p.in.Resources[item.Name]
	if res == nil {
		return nil, nil, Invalid("stage %s: resource %s not found", p.in.Stage.Name, item.Name)
	}
	var override []cyclonev1alpha1.ParameterItem
	for _, rp := range p.in.Run.Spec.ResourceParams {
		if rp.Name == item.Name {
			override = rp.Parameters
		}
	}
	names, values := template.Parameters(p.vars, res.Spec.Parameters, override)
	if err := template.ResolveSecretRefs(values, p.in.Run.Namespace, p.in.Secrets, p.stash.hide); err != nil {
		return nil, nil, Invalid("stage %s: resource %s: %v", p.in.Stage.Name, item.Name, err)
	}
	env := make([]corev1.EnvVar, 0, len(names)+1)
	env = append(env, corev1.EnvVar{Name: convention.EnvResourceName, Value: item.Name})
	for _, n := range names {
		env = append(env, corev1.EnvVar{Name: n, Value: values[n]})
	}
	return res, env, nil
}

// resolverImage is the image that resolves a Resource of type typ when
// the Resource names none of its own.
func (b Builder) resolverImage(typ string) string {
	if img := b.ResolverImages[typ]; img != "" {
		return img
	}
	return b.DefaultResolverImage
}

func (b Builder) resourceResolver(res *cyclonev1alpha1.Resource) string {
	if res.Spec.Resolver != "" {
		return res.Spec.Resolver
	}
	return b.resolverImage(res.Spec.Type)
}

// resolverArgs are the arguments of a resolver container. A Resource
// resolved by an image of its own (spec.resolver, or ResolverImages) gets
// Cyclone's single "pull" or "push" argument; gyre's own image, whose
// entrypoint is the gyre binary, is told the type as well.
func (b Builder) resolverArgs(res *cyclonev1alpha1.Resource, op string) []string {
	if res.Spec.Resolver != "" || b.ResolverImages[res.Spec.Type] != "" {
		return []string{op}
	}
	return []string{"resolve", res.Spec.Type, op}
}

// resolverMessagePolicy makes the kubelet keep the end of a failed gyre
// resolver's log as its termination message, which the stage's status
// shows: without it a real node reports a bare exit code, and the reason
// (a refused clone, a volume gyre's user may not write) is lost with the
// Pod. gyre's resolvers never log a credential; a resolver image of the
// Resource's own might, so its log stays out of the status.
func (b Builder) resolverMessagePolicy(res *cyclonev1alpha1.Resource) corev1.TerminationMessagePolicy {
	if res.Spec.Resolver != "" || b.ResolverImages[res.Spec.Type] != "" {
		return ""
	}
	return corev1.TerminationMessageFallbackToLogsOnError
}
