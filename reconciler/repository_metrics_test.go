package reconciler

import (
	"testing"

	. "github.com/onsi/gomega"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/metricstest"
)

// fetchSeries reads the fetch durations of one Repository, by result,
// as sample counts.
func fetchSeries(g Gomega, obj *gyrev1alpha1.Repository) map[string]float64 {
	got, err := metricstest.Series("gyre_repository_fetch_duration_seconds", map[string]string{"repository": obj.Name})
	g.Expect(err).NotTo(HaveOccurred())
	return got
}

func TestRepositoryReconciler_metrics(t *testing.T) {
	f := newRepositoryFixture(t, gitserver.HTTPOptions{})
	f.repo.WriteFile("base/kustomization.yaml", "resources: []\n")
	f.repo.Commit("one")
	f.repo.Push()
	key := func(obj *gyrev1alpha1.Repository, result string) string {
		return metricstest.Key("repository", obj.Name, "result", result)
	}

	t.Run("A fetch of a new commit is timed as fetched, and a poll that finds it again as unchanged.", func(t *testing.T) {
		g := NewWithT(t)
		obj := f.create(t, g, gyrev1alpha1.RepositorySpec{Ref: &gyrev1alpha1.GitRef{Branch: "main"}})
		eventually(g, func(g Gomega) {
			g.Expect(fetchSeries(g, obj)).To(Equal(map[string]float64{key(obj, "fetched"): 1}))
		})
		token := request(g, obj)
		eventually(g, func(g Gomega) {
			g.Expect(get(g, obj).Status.LastHandledReconcileAt).To(Equal(token))
			g.Expect(fetchSeries(g, obj)).To(Equal(map[string]float64{key(obj, "fetched"): 1, key(obj, "unchanged"): 1}))
		})
	})

	t.Run("A fetch of a branch the remote lacks is timed under its failure's reason.", func(t *testing.T) {
		g := NewWithT(t)
		obj := f.create(t, g, gyrev1alpha1.RepositorySpec{Ref: &gyrev1alpha1.GitRef{Branch: "no-such-branch"}})
		eventually(g, func(g Gomega) {
			got := fetchSeries(g, obj)
			g.Expect(got).To(HaveLen(1))
			g.Expect(got).To(HaveKeyWithValue(key(obj, "RefNotFound"), BeNumerically(">=", 1)))
		})
	})
}
