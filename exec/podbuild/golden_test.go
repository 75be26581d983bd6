package podbuild

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/podsecurity"
)

var update = flag.Bool("update", false, "rewrite the golden stage Pods in testdata/pods")

// TestStagePod_golden pins every field of the stage Pods gyre builds: a
// stage Pod is what a tenant's stage runs as, so any change to it shows
// as a diff of testdata/pods/*.yaml (go test ./exec/podbuild -run TestStagePod_golden -update).
func TestStagePod_golden(t *testing.T) {
	full := func() Input {
		in := podInput()
		in.Stage.Spec.Pod.Inputs.Arguments = append(in.Stage.Spec.Pod.Inputs.Arguments,
			cyclonev1alpha1.ArgumentValue{Name: "password", Value: ptr.To("${secrets.cyclone-acme:registry/data.password}")},
			cyclonev1alpha1.ArgumentValue{Name: "tag", Value: ptr.To("$(random:6)")})
		main := &in.Stage.Spec.Pod.Spec.Containers[0]
		main.Env = []corev1.EnvVar{{Name: "PASSWORD", Value: "{{ password }}"}, {Name: "TAG", Value: "{{ tag }}"}}
		in.Stage.Spec.Pod.Spec.Containers = append(in.Stage.Spec.Pod.Spec.Containers, corev1.Container{Name: "wsc-mysql", Image: "mysql:8"})
		in.Stage.Spec.Pod.Inputs.Artifacts = []cyclonev1alpha1.ArtifactItem{{Name: "cov", Path: "/in/coverage.out"}}
		in.Item = cyclonev1alpha1.StageItem{Name: "build", Artifacts: []cyclonev1alpha1.ArtifactItem{{Name: "cov", Source: "test/coverage"}}}
		in.ArtifactPaths = map[string]string{"test/coverage": "/go/src/app/coverage.out"}
		in.Resources["tar"] = &cyclonev1alpha1.Resource{Spec: cyclonev1alpha1.ResourceSpec{Type: cyclonev1alpha1.HTTPResourceType}}
		in.Resources["cache"] = &cyclonev1alpha1.Resource{Spec: cyclonev1alpha1.ResourceSpec{Type: cyclonev1alpha1.GitResourceType,
			Parameters: []cyclonev1alpha1.ParameterItem{{Name: "SCM_TOKEN", Value: ptr.To("${secrets.cyclone-acme:git/data.token}")}},
			Persistent: &cyclonev1alpha1.Persistent{PVC: "cache", Path: "repos/app", PullPolicy: cyclonev1alpha1.PullIfNotExist}}}
		in.Stage.Spec.Pod.Inputs.Resources = append(in.Stage.Spec.Pod.Inputs.Resources, cyclonev1alpha1.ResourceItem{Name: "cache"})
		in.Stage.Spec.Pod.Outputs.Resources = append(in.Stage.Spec.Pod.Outputs.Resources, cyclonev1alpha1.ResourceItem{Name: "tar"})
		in.Run.Spec.PresetVolumes = []cyclonev1alpha1.PresetVolume{
			{Type: cyclonev1alpha1.PresetVolumeTypeSecret, Path: "config.json", MountPath: "/root/.docker/config.json", ObjectName: ptr.To("docker"), ContainerGroup: cyclonev1alpha1.ContainerGroupWorkload},
			{Type: cyclonev1alpha1.PresetVolumeTypeHostPath, Path: "/etc/localtime", MountPath: "/etc/localtime"},
		}
		in.Secrets = map[string]*corev1.Secret{
			"registry": {ObjectMeta: metav1.ObjectMeta{Name: "registry"}, Data: map[string][]byte{"password": []byte("hunter2")}},
			"git":      {ObjectMeta: metav1.ObjectMeta{Name: "git"}, Data: map[string][]byte{"token": []byte("ghp_x")}},
		}
		return in
	}
	restricted := func() Input {
		in := podInput()
		in.PodSecurity = podsecurity.Restricted
		in.PVC = ""
		in.Stage.Spec.Pod.Outputs.Resources = nil
		in.Stage.Spec.Pod.Spec.Containers[0].Command = nil
		in.Run.Spec.ServiceAccount = "deployer"
		in.Project = nil
		return in
	}
	withDind := builder(func(b *Builder) {
		b.ResolverImages = map[string]string{cyclonev1alpha1.GitResourceType: "git-resolver:1"}
		b.DindBip, b.DindInsecureRegistries = "172.17.0.1/16", []string{"registry.local:5000"}
	})
	noDind := builder(func(b *Builder) { b.DindImage = "" })
	for _, tt := range []struct {
		file  string
		cfg   Builder
		input func() Input
	}{
		{"image-build.yaml", withDind, podInput},
		{"everything.yaml", withDind, full},
		{"no-dind.yaml", noDind, full},
		{"restricted.yaml", noDind, restricted},
	} {
		t.Run(tt.file, func(t *testing.T) {
			g := NewWithT(t)
			pod, secret, err := tt.cfg.StagePod(tt.input())
			g.Expect(err).NotTo(HaveOccurred())
			checkGolden(g, tt.file, pod, secret)
		})
	}
}

// checkGolden compares objects, as YAML documents, with testdata/pods/file.
func checkGolden(g Gomega, file string, objs ...any) {
	var out []byte
	for _, o := range objs {
		if o == nil || o == (*corev1.Secret)(nil) {
			continue
		}
		b, err := yaml.Marshal(o)
		g.Expect(err).NotTo(HaveOccurred())
		out = append(append(out, "---\n"...), b...)
	}
	path := filepath.Join("testdata", "pods", file)
	if *update {
		g.Expect(os.WriteFile(path, out, 0o644)).To(Succeed())
	}
	want, err := os.ReadFile(path)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(out)).To(Equal(string(want)))
}
