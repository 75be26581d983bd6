package api_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/testcluster"
)

// TestRepository_validation holds the API server to rejecting what the
// Repository reconciler could never follow, with the field in the message.
func TestRepository_validation(t *testing.T) {
	testcluster.Require(t)
	tests := []struct {
		name    string
		spec    gyrev1alpha1.RepositorySpec
		wantErr []string // substrings of the API server's message; none means accepted
	}{
		{
			name: "a branch over https is accepted",
			spec: gyrev1alpha1.RepositorySpec{URL: "https://git.example.com/org/pipelines.git", Ref: &gyrev1alpha1.GitRef{Branch: "main"}},
		},
		{
			name: "an scp-like ssh url with a semver range is accepted",
			spec: gyrev1alpha1.RepositorySpec{URL: "git@git.example.com:org/pipelines.git", Ref: &gyrev1alpha1.GitRef{SemVer: ">=1.2.0 <2.0.0"}},
		},
		{
			name: "a tilde range with a v prefix is accepted",
			spec: gyrev1alpha1.RepositorySpec{URL: "ssh://git@git.example.com/org/p.git", Ref: &gyrev1alpha1.GitRef{SemVer: "~v1.4 || ^2.x"}},
		},
		{
			name: "no ref at all is accepted and means main",
			spec: gyrev1alpha1.RepositorySpec{URL: "https://git.example.com/org/pipelines.git"},
		},
		{
			name:    "two refs at once are rejected",
			spec:    gyrev1alpha1.RepositorySpec{URL: "https://git.example.com/p.git", Ref: &gyrev1alpha1.GitRef{Branch: "main", Tag: "v1.0.0"}},
			wantErr: []string{"spec.ref", "exactly one of branch, tag, semver and commit"},
		},
		{
			name:    "an empty ref is rejected",
			spec:    gyrev1alpha1.RepositorySpec{URL: "https://git.example.com/p.git", Ref: &gyrev1alpha1.GitRef{}},
			wantErr: []string{"spec.ref", "exactly one of"},
		},
		{
			name:    "a malformed semver range is rejected",
			spec:    gyrev1alpha1.RepositorySpec{URL: "https://git.example.com/p.git", Ref: &gyrev1alpha1.GitRef{SemVer: ">=1.0 <<2"}},
			wantErr: []string{"spec.ref.semver"},
		},
		{
			name:    "a short commit is rejected",
			spec:    gyrev1alpha1.RepositorySpec{URL: "https://git.example.com/p.git", Ref: &gyrev1alpha1.GitRef{Commit: "abc123"}},
			wantErr: []string{"spec.ref.commit"},
		},
		{
			name:    "an empty url is rejected",
			spec:    gyrev1alpha1.RepositorySpec{URL: ""},
			wantErr: []string{"spec.url"},
		},
		{
			name:    "a file url is rejected",
			spec:    gyrev1alpha1.RepositorySpec{URL: "file:///etc"},
			wantErr: []string{"spec.url"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			repo := &gyrev1alpha1.Repository{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "repo-"},
				Spec:       tt.spec,
			}
			err := k8sClient.Create(context.Background(), repo)
			if len(tt.wantErr) == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), repo) })
				g.Expect(repo.Spec.Interval).To(HaveValue(Equal(metav1.Duration{Duration: time.Minute})), "interval defaulted")
				return
			}
			g.Expect(err).To(HaveOccurred())
			for _, want := range tt.wantErr {
				g.Expect(err.Error()).To(ContainSubstring(want))
			}
		})
	}
}

// TestTenant_validation holds the API server to rejecting Tenants whose
// namespaces could not exist.
func TestTenant_validation(t *testing.T) {
	testcluster.Require(t)
	tests := []struct {
		name    string
		tenant  string
		cluster string
		// podSecurity is the Tenant's level; empty leaves the default.
		podSecurity string
		wantErr     string
	}{
		{name: "a short name and cluster are accepted", tenant: "shop", cluster: "prod"},
		{name: "a name too long for its worker namespace is rejected", tenant: "a-very-long-tenant-name-that-cannot-fit-in-a-namespace", cluster: "prod", wantErr: "at most 48 characters"},
		{name: "a cluster name that is no DNS label is rejected", tenant: "shop2", cluster: "Prod_EU", wantErr: "spec.clusters[0].name"},
		{name: "a name whose namespace would be another tenant's worker namespace is rejected", tenant: "shop-worker", cluster: "prod", wantErr: "must not end in -worker"},
		{name: "an unknown pod security level is rejected", tenant: "shop3", cluster: "prod", podSecurity: "root", wantErr: "spec.podSecurity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			tenant := &gyrev1alpha1.Tenant{
				ObjectMeta: metav1.ObjectMeta{Name: tt.tenant},
				Spec: gyrev1alpha1.TenantSpec{
					RepositoryRef: gyrev1alpha1.ObjectReference{Name: "pipelines"},
					Clusters:      []gyrev1alpha1.TenantCluster{{Name: tt.cluster}},
					PodSecurity:   tt.podSecurity,
				},
			}
			err := k8sClient.Create(context.Background(), tenant)
			if tt.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), tenant) })
				g.Expect(tenant.Spec.Prune).To(HaveValue(BeTrue()), "prune defaults to true")
				g.Expect(tenant.Spec.DeletionPolicy).To(Equal(gyrev1alpha1.DeletionPolicyDelete))
				g.Expect(tenant.Spec.PodSecurity).To(Equal("baseline"), "pod security defaults to baseline")
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
		})
	}
}
