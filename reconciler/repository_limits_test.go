package reconciler

import (
	"crypto/rand"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/source"
)

func TestRepositoryReconciler_limits(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	f := newRepositoryFixture(t, gitserver.HTTPOptions{})
	f.repo.WriteFile("base/kustomization.yaml", "resources: []\n")
	one := f.repo.Commit("one")
	f.repo.Push()
	limit := resource.MustParse("1Mi")
	obj := f.create(t, g, gyrev1alpha1.RepositorySpec{
		Ref:    &gyrev1alpha1.GitRef{Branch: "main"},
		Limits: &gyrev1alpha1.RepositoryLimits{MaxArtifactBytes: &limit},
	})
	var good *gyrev1alpha1.Artifact
	eventually(g, func(g Gomega) {
		got := get(g, obj)
		g.Expect(readyOf(got)).To(HaveField("Status", metav1.ConditionTrue))
		g.Expect(got.Status.Artifact).To(HaveField("Revision", "main@sha1:"+one))
		good = got.Status.Artifact
	})

	// A commit with an 8 MiB blob goes past the 1Mi limit: Stalled with
	// the reason, the last good artifact still served.
	b := make([]byte, 8<<20)
	_, _ = rand.Read(b)
	f.repo.WriteFile("big.bin", string(b))
	f.repo.Commit("big")
	f.repo.Push()
	before := f.git.PackBytes()
	request(g, get(g, obj))
	eventually(g, func(g Gomega) {
		got := get(g, obj)
		stalled := apimeta.FindStatusCondition(got.Status.Conditions, meta.StalledCondition)
		g.Expect(stalled).NotTo(BeNil())
		g.Expect(stalled).To(And(
			HaveField("Status", metav1.ConditionTrue),
			HaveField("Reason", string(source.LimitExceeded)),
			HaveField("Message", ContainSubstring("artifact exceeds spec.limits.maxArtifactBytes (1Mi)")),
			HaveField("Message", ContainSubstring("serving the last artifact, main@sha1:"+one))))
		g.Expect(readyOf(got)).To(HaveField("Status", metav1.ConditionFalse))
		g.Expect(got.Status.Artifact).To(Equal(good))
	})
	received := f.git.PackBytes() - before
	t.Logf("pack bytes read for the 8 MiB commit: %d", received)
	g.Expect(received).To(BeNumerically("<", 2<<20), "the fetch stopped near the limit")
	dir, err := f.rec.ArtifactDir(get(g, obj))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dir).To(BeADirectory())

	// The hostile file removed, the next poll recovers without a spec
	// change.
	f.repo.Remove("big.bin")
	three := f.repo.Commit("three")
	f.repo.Push()
	request(g, get(g, obj))
	eventually(g, func(g Gomega) {
		got := get(g, obj)
		g.Expect(readyOf(got)).To(HaveField("Status", metav1.ConditionTrue))
		g.Expect(got.Status.Artifact).To(HaveField("Revision", "main@sha1:"+three))
		g.Expect(apimeta.FindStatusCondition(got.Status.Conditions, meta.StalledCondition)).To(BeNil())
	})
}
