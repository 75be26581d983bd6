package shard

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name, shard, wantErr string
	}{
		{name: "A lower-case name with digits and dashes is a shard.", shard: "eu-west-1"},
		{name: "An empty name is refused, pointing at leaving the flag out.", shard: "", wantErr: "leave --shard out"},
		{name: "A name longer than a label value is refused with the label named.", shard: "a234567890123456789012345678901234567890123456789012345678901234", wantErr: `not a valid value of label gyre.dev/shard`},
		{name: "A name with a slash is refused as a label value.", shard: "eu/west", wantErr: "not a valid value of label"},
		{name: "An upper-case name, a valid label value, cannot name the shard's lease.", shard: "EU", wantErr: "leader election lease"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := Validate(tt.shard)
			if tt.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
		})
	}
}

func TestOwns(t *testing.T) {
	tests := []struct {
		name   string
		shard  string
		labels map[string]string
		want   bool
	}{
		{name: "A shard owns what carries its name.", shard: "a", labels: map[string]string{convention.ShardLabel: "a"}, want: true},
		{name: "A shard does not own another shard's.", shard: "a", labels: map[string]string{convention.ShardLabel: "b"}},
		{name: "A shard does not own what has no shard.", shard: "a"},
		{name: "The replicas without a shard own what has none.", shard: "", want: true},
		{name: "The replicas without a shard do not own a shard's.", shard: "", labels: map[string]string{convention.ShardLabel: "a"}},
		{name: "An empty shard label is in no shard, as in Flux.", shard: "", labels: map[string]string{convention.ShardLabel: ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(Owns(tt.shard, tt.labels)).To(Equal(tt.want))
		})
	}
}

// A pure unit test of Namespaces.Owns: which reader says what is the
// point, so fake readers stand in for the cache and the API server.
func TestNamespaces_Owns(t *testing.T) {
	scheme := runtime.NewScheme()
	NewWithT(t).Expect(gyrev1alpha1.AddToScheme(scheme)).To(Succeed())
	tenant := func(name, shard string) client.Object {
		tn := &gyrev1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if shard != "" {
			tn.Labels = map[string]string{convention.ShardLabel: shard}
		}
		return tn
	}
	reader := func(objs ...client.Object) client.Reader {
		return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	}
	tests := []struct {
		name        string
		shard, ns   string
		cache, live client.Reader
		want        bool
	}{
		{name: "A namespace of a Tenant in the shard's cache is the shard's.", shard: "a", ns: "cyclone-t",
			cache: reader(tenant("t", "a")), live: reader(tenant("t", "a")), want: true},
		{name: "A namespace of a Tenant of another shard, read live, is not the shard's.", shard: "a", ns: "cyclone-t",
			cache: reader(), live: reader(tenant("t", "b"))},
		{name: "A Tenant just moved in, not yet cached, is the shard's.", shard: "a", ns: "cyclone-t",
			cache: reader(), live: reader(tenant("t", "a")), want: true},
		{name: "A namespace of no Tenant belongs to the replicas without a shard.", shard: "", ns: "cyclone-gone",
			cache: reader(), live: reader(), want: true},
		{name: "A namespace of no Tenant is no shard's.", shard: "a", ns: "cyclone-gone",
			cache: reader(), live: reader()},
		{name: "A namespace outside the tenant convention belongs to the replicas without a shard.", shard: "", ns: "default",
			cache: reader(), live: reader(), want: true},
		{name: "A namespace outside the tenant convention is no shard's.", shard: "a", ns: "default",
			cache: reader(), live: reader()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Namespaces{Shard: tt.shard, Cache: tt.cache, Live: tt.live}.Owns(context.Background(), tt.ns)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}
}
