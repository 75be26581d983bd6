package podbuild

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
)

// helperImage is gyre's own image, the default of every helper.
const helperImage = "gyre.dev/gyre:dev"

// builder is the Builder of the engine's default configuration, changed
// by mutate.
func builder(mutate ...func(*Builder)) Builder {
	b := Builder{
		DefaultResolverImage: helperImage,
		CoordinatorImage:     helperImage,
		DindImage:            "docker:28-dind",
		ServiceAccount:       "cyclone-worker",
	}
	for _, m := range mutate {
		m(&b)
	}
	return b
}

func podInput() Input {
	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{Name: "run1", Namespace: "cyclone-acme", UID: "uid-1"},
		Spec: cyclonev1alpha1.WorkflowRunSpec{
			StageParams: []cyclonev1alpha1.ParameterConfig{{Name: "build", Parameters: []cyclonev1alpha1.ParameterItem{
				{Name: "target", Value: ptr.To("release-${variables.TAG}")}}}},
			ResourceParams: []cyclonev1alpha1.ParameterConfig{{Name: "src", Parameters: []cyclonev1alpha1.ParameterItem{
				{Name: "SCM_REVISION", Value: ptr.To("${variables.TAG}")}}}},
		},
		Status: cyclonev1alpha1.WorkflowRunStatus{GlobalVariables: []cyclonev1alpha1.GlobalVariable{{Name: "TAG", Value: "v1"}}},
	}
	stage := &cyclonev1alpha1.Stage{
		ObjectMeta: metav1.ObjectMeta{Name: "build", Namespace: "cyclone-acme"},
		Spec: cyclonev1alpha1.StageSpec{Pod: &cyclonev1alpha1.PodWorkload{
			Meta: &cyclonev1alpha1.PodWorkloadMeta{Annotations: map[string]string{"team": "a"}},
			Inputs: cyclonev1alpha1.Inputs{
				Arguments: []cyclonev1alpha1.ArgumentValue{{Name: "target", Value: ptr.To("debug")}, {Name: "image", Value: ptr.To("golang:1")}},
				Resources: []cyclonev1alpha1.ResourceItem{{Name: "src", Path: "/go/src/app"}},
			},
			Outputs: cyclonev1alpha1.Outputs{
				Resources: []cyclonev1alpha1.ResourceItem{{Name: "img", Path: "/out/image"}},
				Artifacts: []cyclonev1alpha1.ArtifactItem{{Name: "bin", Path: "/out/bin"}},
			},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "main", Image: "{{ image }}", Command: []string{"make", "{{ target }}"},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}},
			}}},
		}},
	}
	return Input{
		Run:      run,
		Workflow: &cyclonev1alpha1.Workflow{Spec: cyclonev1alpha1.WorkflowSpec{Resources: &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}}},
		Stage:    stage,
		Resources: map[string]*cyclonev1alpha1.Resource{
			"src": {Spec: cyclonev1alpha1.ResourceSpec{Type: cyclonev1alpha1.GitResourceType, Parameters: []cyclonev1alpha1.ParameterItem{
				{Name: "SCM_URL", Value: ptr.To("https://git.example/app")}, {Name: "SCM_REVISION", Value: ptr.To("main")}}}},
			"img": {Spec: cyclonev1alpha1.ResourceSpec{Type: cyclonev1alpha1.ImageResourceType, Resolver: "registry.example/image-resolver:1"}},
		},
		Project: &cyclonev1alpha1.Project{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: cyclonev1alpha1.ProjectSpec{
			Quota:            map[corev1.ResourceName]string{"requests.cpu": "500m", "limits.cpu": "1", "limits.memory": "2Gi"},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "project-pull"}},
		}},
		Namespace: "cyclone-acme-worker",
		PVC:       "cyclone-pvc-acme",
		Attempt:   2,
		// The image output needs the Docker daemon.
		PodSecurity: podsecurity.Privileged,
	}
}

func TestStagePod(t *testing.T) {
	cfg := builder(func(b *Builder) {
		b.ResolverImages = map[string]string{cyclonev1alpha1.GitResourceType: "git-resolver:1"}
	})
	t.Run("The Pod has a deterministic name, the engine's labels and the Stage's annotations.", func(t *testing.T) {
		g := NewWithT(t)
		pod, _, err := cfg.StagePod(podInput())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Name).To(Equal(convention.PodName("run1", "build", 2)))
		g.Expect(pod.Namespace).To(Equal("cyclone-acme-worker"))
		g.Expect(pod.Labels).To(Equal(map[string]string{convention.LabelManagedBy: convention.ManagedByExec, convention.LabelRunUID: "uid-1", convention.LabelPodKind: "workload"}))
		g.Expect(pod.Annotations).To(Equal(map[string]string{"team": "a", convention.AnnotationRun: "cyclone-acme/run1", convention.AnnotationStage: "build", convention.AnnotationAttempt: "2"}))
		g.Expect(pod.Spec.RestartPolicy).To(Equal(corev1.RestartPolicyNever))
		g.Expect(pod.Spec.ServiceAccountName).To(Equal("cyclone-worker"), "the account gyre provisions, which the coordinator needs")
	})
	t.Run("A run's service account wins over the Stage's.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		in.Stage.Spec.Pod.Spec.ServiceAccountName = "stage-sa"
		pod, _, err := cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Spec.ServiceAccountName).To(Equal("stage-sa"))
		in.Run.Spec.ServiceAccount = "run-sa"
		pod, _, err = cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Spec.ServiceAccountName).To(Equal("run-sa"))
	})
	t.Run("Arguments come from the run, then the Stage, with variables substituted.", func(t *testing.T) {
		g := NewWithT(t)
		pod, _, _ := cfg.StagePod(podInput())
		g.Expect(pod.Spec.Containers[0].Image).To(Equal("golang:1"))
		g.Expect(pod.Spec.Containers[0].Command).To(HaveExactElements(convention.ToolsBinary, "collect", "--artifact=bin=/out/bin", "--", "make", "release-v1"))
	})
	t.Run("Arguments fill every string of the workload, may use each other and may be generated, the same way each time.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		pod := in.Stage.Spec.Pod
		pod.Inputs.Arguments = append(pod.Inputs.Arguments,
			cyclonev1alpha1.ArgumentValue{Name: "cmd", Value: ptr.To("go build -o {{ out }}/app && echo built")},
			cyclonev1alpha1.ArgumentValue{Name: "out", Value: ptr.To("/out/bin")},
			cyclonev1alpha1.ArgumentValue{Name: "tag", Value: ptr.To("$(random:6)")})
		pod.Spec.Containers[0].Command = []string{"sh", "-c", "{{{ cmd }}}"}
		pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TAG", Value: "{{ tag }}"}}
		pod.Outputs.Artifacts[0].Path = "{{ out }}"
		got, _, err := cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		main := got.Spec.Containers[0]
		g.Expect(main.Command).To(HaveExactElements(convention.ToolsBinary, "collect", "--artifact=bin=/out/bin", "--", "sh", "-c", "go build -o /out/bin/app && echo built"))
		tag := main.Env[0].Value
		g.Expect(tag).To(MatchRegexp(`^[a-z0-9]{6}$`))
		again, _, _ := cfg.StagePod(in)
		g.Expect(again.Spec.Containers[0].Env[0].Value).To(Equal(tag), "a restarted engine builds the same Pod")
		in.Attempt++
		retry, _, _ := cfg.StagePod(in)
		g.Expect(retry.Spec.Containers[0].Env[0].Value).NotTo(Equal(tag), "each attempt draws its own")
	})
	t.Run("Arguments and resource parameters may refer to Secrets of the run's namespace.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		in.Stage.Spec.Pod.Inputs.Arguments = append(in.Stage.Spec.Pod.Inputs.Arguments,
			cyclonev1alpha1.ArgumentValue{Name: "password", Value: ptr.To("${secrets.cyclone-acme:registry/data.password}")})
		in.Stage.Spec.Pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", Value: "{{ password }}"}}
		in.Resources["src"].Spec.Parameters = append(in.Resources["src"].Spec.Parameters,
			cyclonev1alpha1.ParameterItem{Name: "SCM_AUTH", Value: ptr.To("${secrets.cyclone-acme:git/data.token}")})
		_, _, err := cfg.StagePod(in)
		g.Expect(err).To(MatchError(ContainSubstring("stage build: argument password: ${secrets.cyclone-acme:registry/data.password}: Secret cyclone-acme/registry not found")))
		in.Secrets = map[string]*corev1.Secret{
			"registry": {ObjectMeta: metav1.ObjectMeta{Name: "registry"}, Data: map[string][]byte{"password": []byte("hunter2")}},
			"git":      {ObjectMeta: metav1.ObjectMeta{Name: "git"}, Data: map[string][]byte{"token": []byte("ghp_x")}},
		}
		in.Stage.Spec.Pod.Spec.Containers[0].Args = []string{"--login=ci:{{ password }}"}
		pod, secret, err := cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())

		// The values are in the run Secret, and the Pod refers to them.
		g.Expect(secret).NotTo(BeNil())
		g.Expect(secret.Name).To(Equal(RunSecretName(convention.PodName("run1", "build", 2))))
		g.Expect(secret.Namespace).To(Equal("cyclone-acme-worker"))
		g.Expect(secret.Labels).To(Equal(map[string]string{convention.LabelManagedBy: convention.ManagedByExec, convention.LabelRunUID: "uid-1"}))
		g.Expect(secret.Data).To(Equal(map[string][]byte{"GYRE_SECRET_0": []byte("hunter2"), "GYRE_SECRET_1": []byte("ghp_x")}))
		ref := func(key string) *corev1.EnvVarSource {
			return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: RunSecretName(convention.PodName("run1", "build", 2))}, Key: key}}
		}
		main := pod.Spec.Containers[0]
		g.Expect(main.Env).To(ContainElement(corev1.EnvVar{Name: "PASSWORD", ValueFrom: ref("GYRE_SECRET_0")}))
		g.Expect(main.Env[0]).To(Equal(corev1.EnvVar{Name: "GYRE_SECRET_0", ValueFrom: ref("GYRE_SECRET_0")}), "first, for the kubelet to expand it in later values")
		g.Expect(main.Args).To(Equal([]string{"--login=ci:$(GYRE_SECRET_0)"}))
		g.Expect(pod.Spec.InitContainers[0].Env).To(ContainElement(corev1.EnvVar{Name: "SCM_AUTH", ValueFrom: ref("GYRE_SECRET_1")}))
		data, err := json.Marshal(pod)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(data)).NotTo(Or(ContainSubstring("hunter2"), ContainSubstring("ghp_x")), "no value in clear in the Pod")
		g.Expect(string(data)).NotTo(ContainSubstring(`\u0000`))

		again, secretAgain, _ := cfg.StagePod(in)
		g.Expect(again).To(Equal(pod), "deterministic")
		g.Expect(secretAgain).To(Equal(secret))

		in.Stage.Spec.Pod.Spec.Containers[0].Image = "registry.example/{{ password }}/app"
		_, _, err = cfg.StagePod(in)
		g.Expect(err).To(MatchError("stage build: spec.containers[0].image holds a secret reference; a resolved secret may only be used in a container's command, args or env"))
		var invalid *InvalidError
		g.Expect(errors.As(err, &invalid)).To(BeTrue())
		g.Expect(err.Error()).NotTo(ContainSubstring("hunter2"))

		in = podInput()
		_, secret, err = cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(secret).To(BeNil(), "no secret reference, no run Secret")
	})
	t.Run("Output resources without a path share Cyclone's /cyclone/resources with their resolvers.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		in.Resources["tar"] = &cyclonev1alpha1.Resource{Spec: cyclonev1alpha1.ResourceSpec{Type: cyclonev1alpha1.HTTPResourceType, Resolver: "registry.example/http-resolver:1"}}
		in.Stage.Spec.Pod.Outputs.Resources = []cyclonev1alpha1.ResourceItem{{Name: "img"}, {Name: "tar"}}
		pod, _, err := cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		shared := "run1/outputs/build/_cyclone"
		main := pod.Spec.Containers[0]
		g.Expect(main.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: DataVolume, MountPath: "/cyclone/resources", SubPath: shared}))
		g.Expect(main.VolumeMounts).To(HaveEach(Not(HaveField("MountPath", "/workspace/img"))))
		for _, name := range []string{"o-img", "o-tar"} {
			i := slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == name })
			g.Expect(pod.Spec.Containers[i].VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: DataVolume, MountPath: "/workspace/data", SubPath: shared}), name)
		}
	})
	t.Run("A persistent resource's PULL_POLICY parameter counts unless spec.persistent says otherwise.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		src := in.Resources["src"]
		src.Spec.Parameters = append(src.Spec.Parameters, cyclonev1alpha1.ParameterItem{Name: "PULL_POLICY", Value: ptr.To("IfNotPresent")})
		src.Spec.Persistent = &cyclonev1alpha1.Persistent{PVC: "cache", Path: "repos/app"}
		policies := func() []corev1.EnvVar {
			pod, _, err := cfg.StagePod(in)
			g.Expect(err).NotTo(HaveOccurred())
			var out []corev1.EnvVar
			for _, e := range pod.Spec.InitContainers[0].Env {
				if e.Name == convention.EnvPullPolicy {
					out = append(out, e)
				}
			}
			return out
		}
		g.Expect(policies()).To(Equal([]corev1.EnvVar{{Name: convention.EnvPullPolicy, Value: "IfNotPresent"}}))
		src.Spec.Persistent.PullPolicy = cyclonev1alpha1.PullAlways
		g.Expect(policies()).To(Equal([]corev1.EnvVar{{Name: convention.EnvPullPolicy, Value: "Always"}}))
	})
	t.Run("Workload containers are told the run and the stage, as in Cyclone.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		in.Stage.Spec.Pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "STAGE_NAME", Value: "mine"}}
		pod, _, _ := cfg.StagePod(in)
		g.Expect(pod.Spec.Containers[0].Env).To(ConsistOf(
			corev1.EnvVar{Name: "STAGE_NAME", Value: "mine"},
			corev1.EnvVar{Name: "WORKFLOWRUN_NAME", Value: "run1"},
			corev1.EnvVar{Name: "METADATA_NAMESPACE", Value: "cyclone-acme"},
			corev1.EnvVar{Name: "WORKFLOW_NAME", Value: ""}))
	})
	t.Run("A wsc- container is the workload's sidecar: it runs beside the workload and does not hold the stage.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		in.Stage.Spec.Pod.Spec.Containers = append(in.Stage.Spec.Pod.Spec.Containers, corev1.Container{Name: "wsc-mysql", Image: "mysql:8"})
		pod, _, err := cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Spec.Containers).NotTo(ContainElement(HaveField("Name", "wsc-mysql")))
		g.Expect(pod.Spec.InitContainers).To(ContainElement(And(HaveField("Name", "wsc-mysql"),
			HaveField("RestartPolicy", HaveValue(Equal(corev1.ContainerRestartPolicyAlways))))))
		var co corev1.Container
		for _, c := range pod.Spec.Containers {
			if c.Name == "csc-co" {
				co = c
			}
		}
		g.Expect(co.Env).To(ContainElement(corev1.EnvVar{Name: convention.EnvWorkloadContainers, Value: "main"}), "the coordinator waits for the workload only")
	})
	t.Run("A workload with a command leaves output artifacts, files or directories, for gyre collect to copy.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		in.Stage.Spec.Pod.Spec.Containers = append(in.Stage.Spec.Pod.Spec.Containers, corev1.Container{Name: "db", Image: "postgres", Command: []string{"postgres"}})
		pod, _, err := cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Spec.InitContainers).To(ContainElement(corev1.Container{
			Name: "csc-tools", Image: helperImage, Args: []string{"install-self", convention.ToolsBinary},
			VolumeMounts:             []corev1.VolumeMount{{Name: "gyre-tools", MountPath: "/gyre-tools"}},
			SecurityContext:          HelperSecurityContext(),
			Resources:                corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.Quantity{}}, Limits: corev1.ResourceList{corev1.ResourceCPU: resource.Quantity{}, corev1.ResourceMemory: resource.Quantity{}}},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		}))
		main := pod.Spec.Containers[0]
		g.Expect(main.VolumeMounts).To(ContainElements(
			corev1.VolumeMount{Name: "gyre-tools", MountPath: "/gyre-tools", ReadOnly: true},
			corev1.VolumeMount{Name: DataVolume, MountPath: convention.StagingMountPath, SubPath: "run1/staging/" + convention.PodName("run1", "build", 2)}))
		g.Expect(main.VolumeMounts).NotTo(ContainElement(HaveField("MountPath", "/out/bin")), "the path is the workload's to write")
		g.Expect(pod.Spec.Containers[1].Name).To(Equal("db"))
		g.Expect(pod.Spec.Containers[1].Command).To(Equal([]string{"postgres"}), "only the first workload container is wrapped")
	})
	t.Run("A failed gyre resolver leaves the end of its log as its message; a resolver image of the Resource's own does not.", func(t *testing.T) {
		g := NewWithT(t)
		pod, _, err := builder().StagePod(podInput())
		g.Expect(err).NotTo(HaveOccurred())
		policies := map[string]corev1.TerminationMessagePolicy{}
		for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
			policies[c.Name] = c.TerminationMessagePolicy
		}
		g.Expect(policies).To(HaveKeyWithValue("i-src", corev1.TerminationMessageFallbackToLogsOnError), "gyre resolve Git")
		g.Expect(policies).To(HaveKeyWithValue("csc-tools", corev1.TerminationMessageFallbackToLogsOnError))
		g.Expect(policies).To(HaveKeyWithValue("o-img", BeEmpty()), "the Resource's own resolver image")
		g.Expect(policies).To(HaveKeyWithValue("csc-co", corev1.TerminationMessageReadFile), "the coordinator's message is its outputs")
	})
	t.Run("A workload without a command gets a directory at each output artifact's path.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		in.Stage.Spec.Pod.Spec.Containers[0].Command = nil
		pod, _, err := cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Spec.InitContainers).NotTo(ContainElement(HaveField("Name", "csc-tools")))
		g.Expect(pod.Spec.Containers[0].Command).To(BeEmpty())
		g.Expect(pod.Spec.Containers[0].VolumeMounts).To(ContainElement(
			corev1.VolumeMount{Name: DataVolume, MountPath: "/out/bin", SubPath: "run1/staging/" + convention.PodName("run1", "build", 2) + "/bin/bin"}))
	})
	t.Run("An input artifact mounts the file or directory its source stage left at its path.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		in.Stage.Spec.Pod.Inputs.Artifacts = []cyclonev1alpha1.ArtifactItem{{Name: "cov", Path: "/in/coverage.out"}}
		in.Item = cyclonev1alpha1.StageItem{Name: "build", Artifacts: []cyclonev1alpha1.ArtifactItem{{Name: "cov", Source: "test/coverage"}}}
		_, _, err := cfg.StagePod(in)
		g.Expect(err).To(MatchError(ContainSubstring("input artifact cov: stage test has no output artifact coverage")))
		in.ArtifactPaths = map[string]string{"test/coverage": "/go/src/app/coverage.out"}
		pod, _, err := cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Spec.Containers[0].VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: DataVolume, ReadOnly: true,
			MountPath: "/in/coverage.out", SubPath: "run1/artifacts/test/coverage/coverage.out"}))
	})
	t.Run("Requests and limits default from the Workflow, then the Project quota.", func(t *testing.T) {
		g := NewWithT(t)
		pod, _, _ := cfg.StagePod(podInput())
		r := pod.Spec.Containers[0].Resources
		g.Expect(r.Limits.Cpu().String()).To(Equal("4"))
		g.Expect(r.Limits.Memory().String()).To(Equal("1Gi"))
		g.Expect(r.Requests.Cpu().String()).To(Equal("500m"))
	})
	t.Run("The engine's containers name the same resources at zero, so that a quota admits the Pod.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		in.Stage.Spec.Pod.Spec.InitContainers = []corev1.Container{{Name: "prepare", Image: "busybox"}}
		pod, _, err := cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		zero := corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.Quantity{}},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.Quantity{}, corev1.ResourceMemory: resource.Quantity{}},
		}
		g.Expect(pod.Spec.InitContainers[0].Resources.Limits.Memory().String()).To(Equal("1Gi"), "the Stage's own init container is sized as its containers")
		helpers := append(pod.Spec.InitContainers[1:], pod.Spec.Containers[1:]...)
		g.Expect(helpers).To(HaveLen(5)) // the input resolver, the gyre installer, the Docker daemon, the output resolver, the coordinator
		for _, c := range helpers {
			g.Expect(c.Resources).To(Equal(zero), c.Name)
		}
	})
	t.Run("A stage that outputs an image gets a Docker daemon, which its workload and image resolvers share.", func(t *testing.T) {
		g := NewWithT(t)
		dind := cfg
		dind.DindBip, dind.DindInsecureRegistries = "172.30.0.1/16", []string{"registry.local:5000"}
		pod, _, err := dind.StagePod(podInput())
		g.Expect(err).NotTo(HaveOccurred())
		daemon := pod.Spec.InitContainers[len(pod.Spec.InitContainers)-1]
		g.Expect(daemon.Name).To(Equal("csc-dind"))
		g.Expect(daemon.Image).To(Equal("docker:28-dind"))
		g.Expect(daemon.Args).To(Equal([]string{"dockerd", "--host=unix:///var/run/docker.sock", "--bip=172.30.0.1/16", "--insecure-registry=registry.local:5000"}))
		g.Expect(daemon.RestartPolicy).To(HaveValue(Equal(corev1.ContainerRestartPolicyAlways)), "a sidecar that ends with the stage")
		g.Expect(daemon.SecurityContext.Privileged).To(HaveValue(BeTrue()))
		g.Expect(daemon.StartupProbe.Exec.Command).To(Equal([]string{"docker", "info"}), "the workload starts once the daemon answers")
		sock := corev1.VolumeMount{Name: "gyre-docker-sock", MountPath: "/var/run"}
		g.Expect(daemon.VolumeMounts).To(ContainElement(sock))
		byName := map[string]corev1.Container{}
		for _, c := range pod.Spec.Containers {
			byName[c.Name] = c
		}
		g.Expect(byName["main"].VolumeMounts).To(ContainElement(sock))
		g.Expect(byName["o-img"].VolumeMounts).To(ContainElement(sock))
		g.Expect(byName["csc-co"].VolumeMounts).NotTo(ContainElement(sock))
		g.Expect(pod.Spec.InitContainers[0].VolumeMounts).NotTo(ContainElement(sock), "the Git resolver needs no daemon")

		none := cfg
		none.DindImage = ""
		pod, _, _ = none.StagePod(podInput())
		g.Expect(pod.Spec.InitContainers).NotTo(ContainElement(HaveField("Name", "csc-dind")))
		g.Expect(pod.Spec.Volumes).NotTo(ContainElement(HaveField("Name", "gyre-docker-sock")))

		in := podInput()
		in.Stage.Spec.Pod.Outputs.Resources = nil
		pod, _, _ = cfg.StagePod(in)
		g.Expect(pod.Spec.InitContainers).NotTo(ContainElement(HaveField("Name", "csc-dind")), "no image output, no daemon")
	})
	t.Run("Input resources are pulled by init containers with the run's parameters.", func(t *testing.T) {
		g := NewWithT(t)
		pod, _, _ := cfg.StagePod(podInput())
		g.Expect(pod.Spec.InitContainers).To(HaveLen(3), "the resolver, the installer of gyre collect, the Docker daemon")
		init := pod.Spec.InitContainers[0]
		g.Expect(init.Image).To(Equal("git-resolver:1"))
		g.Expect(init.Args).To(Equal([]string{"pull"}))
		g.Expect(init.Env).To(ContainElements(
			corev1.EnvVar{Name: "SCM_URL", Value: "https://git.example/app"},
			corev1.EnvVar{Name: "SCM_REVISION", Value: "v1"}))
		g.Expect(init.Env).NotTo(ContainElement(HaveField("Name", convention.EnvPullPolicy)))
		g.Expect(init.VolumeMounts).To(ConsistOf(
			corev1.VolumeMount{Name: DataVolume, MountPath: "/workspace", SubPath: "run1/resources/src"},
			corev1.VolumeMount{Name: coordinatorVolume, MountPath: "/cyclone/results", SubPath: "results/i-src"}))
		g.Expect(pod.Spec.Containers[0].VolumeMounts).To(ContainElements(
			corev1.VolumeMount{Name: DataVolume, MountPath: "/go/src/app", SubPath: "run1/resources/src/data"},
			corev1.VolumeMount{Name: DataVolume, MountPath: "/out/image", SubPath: "run1/outputs/build/img"},
			corev1.VolumeMount{Name: coordinatorVolume, MountPath: "/cyclone/results", SubPath: "results/main"}))
	})
	t.Run("A persistent input resource is pulled into its own PVC with its pull policy.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		in.Resources["src"].Spec.Persistent = &cyclonev1alpha1.Persistent{PVC: "cache", Path: "repos/app", PullPolicy: cyclonev1alpha1.PullIfNotExist}
		pod, _, err := cfg.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Spec.Volumes).To(ContainElement(corev1.Volume{Name: "gyre-persistent-0", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "cache"}}}))
		init := pod.Spec.InitContainers[0]
		g.Expect(init.Env).To(ContainElement(corev1.EnvVar{Name: convention.EnvPullPolicy, Value: "IfNotExist"}))
		g.Expect(init.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "gyre-persistent-0", MountPath: "/workspace", SubPath: "repos/app"}))
		g.Expect(pod.Spec.Containers[0].VolumeMounts).To(ContainElement(
			corev1.VolumeMount{Name: "gyre-persistent-0", MountPath: "/go/src/app", SubPath: "repos/app/data"}))

		ignoring := cfg
		ignoring.IgnorePersistence = true
		pod, _, _ = ignoring.StagePod(in)
		g.Expect(pod.Spec.InitContainers[0].VolumeMounts).To(ContainElement(HaveField("SubPath", "run1/resources/src")),
			"without persistence it is the run's, as gyre dev has it")

		in.Resources["src"].Spec.Persistent = &cyclonev1alpha1.Persistent{PVC: "cache"}
		pod, _, _ = cfg.StagePod(in)
		g.Expect(pod.Spec.InitContainers[0].Env).To(ContainElement(corev1.EnvVar{Name: convention.EnvPullPolicy, Value: "Always"}),
			"Cyclone's default policy")

		in.Resources["src"].Spec.Persistent = &cyclonev1alpha1.Persistent{Path: "x"}
		_, _, err = cfg.StagePod(in)
		g.Expect(err).To(MatchError(ContainSubstring("resource src: spec.persistent.pvc is empty")))
	})
	t.Run("gyre's own resolver is told the resource type; other resolver images get Cyclone's arguments.", func(t *testing.T) {
		g := NewWithT(t)
		pod, _, _ := builder().StagePod(podInput())
		g.Expect(pod.Spec.InitContainers[0].Image).To(Equal(helperImage))
		g.Expect(pod.Spec.InitContainers[0].Args).To(Equal([]string{"resolve", "Git", "pull"}))
		g.Expect(pod.Spec.Containers[1].Args).To(Equal([]string{"push"}), "the image Resource names its own resolver")
	})
	t.Run("The coordinator knows the workload, the outputs and its own Pod.", func(t *testing.T) {
		g := NewWithT(t)
		pod, _, _ := cfg.StagePod(podInput())
		co := pod.Spec.Containers[len(pod.Spec.Containers)-1]
		g.Expect(co.Args).To(Equal([]string{"coordinator"}))
		g.Expect(co.Env).To(ContainElements(
			corev1.EnvVar{Name: convention.EnvRunName, Value: "run1"},
			corev1.EnvVar{Name: convention.EnvStageName, Value: "build"},
			corev1.EnvVar{Name: convention.EnvRunNamespace, Value: "cyclone-acme"},
			corev1.EnvVar{Name: convention.EnvWorkloadContainers, Value: "main"},
			corev1.EnvVar{Name: convention.EnvOutputResources, Value: "img"},
			corev1.EnvVar{Name: convention.EnvOutputArtifacts, Value: "bin"},
			corev1.EnvVar{Name: convention.EnvPodName, Value: convention.PodName("run1", "build", 2)}))
		g.Expect(co.Env).NotTo(ContainElement(HaveField("ValueFrom", Not(BeNil()))), "the coordinator needs no API server to learn about its Pod")
		g.Expect(co.VolumeMounts).To(ConsistOf(
			corev1.VolumeMount{Name: DataVolume, MountPath: convention.CoordinatorDataPath, SubPath: "run1"},
			corev1.VolumeMount{Name: coordinatorVolume, MountPath: convention.CoordinatorVolumePath},
			corev1.VolumeMount{Name: "gyre-podinfo", MountPath: convention.CoordinatorPodInfoPath, ReadOnly: true}))
		g.Expect(pod.Spec.Volumes).To(ContainElement(corev1.Volume{Name: "gyre-podinfo", VolumeSource: corev1.VolumeSource{
			DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{
				Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}}}}}}))
		g.Expect(co.TerminationMessagePath).To(Equal("/dev/termination-log"))
		g.Expect(co.TerminationMessagePolicy).To(Equal(corev1.TerminationMessageReadFile), "the outputs, never the logs")
		out := pod.Spec.Containers[1]
		g.Expect(out.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: coordinatorVolume, MountPath: "/workspace/notify", SubPath: "notify"}))
	})
	t.Run("Output resolvers and the coordinator are sidecars.", func(t *testing.T) {
		g := NewWithT(t)
		pod, _, _ := cfg.StagePod(podInput())
		var names, images []string
		for _, c := range pod.Spec.Containers {
			names, images = append(names, c.Name), append(images, c.Image)
		}
		g.Expect(names).To(Equal([]string{"main", "o-img", CoordinatorName}))
		g.Expect(images[1:]).To(Equal([]string{"registry.example/image-resolver:1", helperImage}))
		g.Expect(pod.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.PersistentVolumeClaim.ClaimName", "cyclone-pvc-acme")))
	})
	t.Run("The Project's pull secrets apply unless the Stage sets its own.", func(t *testing.T) {
		g := NewWithT(t)
		pod, _, _ := cfg.StagePod(podInput())
		g.Expect(pod.Spec.ImagePullSecrets).To(Equal([]corev1.LocalObjectReference{{Name: "project-pull"}}))
		in := podInput()
		in.Stage.Spec.Pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "stage-pull"}}
		pod, _, _ = cfg.StagePod(in)
		g.Expect(pod.Spec.ImagePullSecrets).To(Equal([]corev1.LocalObjectReference{{Name: "stage-pull"}}))
	})
	t.Run("A missing Resource is an invalid stage.", func(t *testing.T) {
		g := NewWithT(t)
		in := podInput()
		delete(in.Resources, "src")
		_, _, err := cfg.StagePod(in)
		var invalid *InvalidError
		g.Expect(err).To(BeAssignableToTypeOf(invalid))
		g.Expect(err).To(MatchError(ContainSubstring("resource src not found")))
	})
	t.Run("A Pod is built the same way twice.", func(t *testing.T) {
		g := NewWithT(t)
		a, _, _ := cfg.StagePod(podInput())
		b, _, _ := cfg.StagePod(podInput())
		g.Expect(a).To(Equal(b))
	})
}
