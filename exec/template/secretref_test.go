package template

import (
	"strconv"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestResolveSecretRefs(t *testing.T) {
	secrets := map[string]*corev1.Secret{"git": {
		ObjectMeta: metav1.ObjectMeta{Name: "git", Namespace: "cyclone-acme"},
		Data: map[string][]byte{
			"token": []byte("s3cret"),
			"json":  []byte(`{"user":{"id":"111","roles":["ci","admin"],"uid":7}}`),
		},
	}}
	tests := []struct {
		name    string
		value   string
		want    string
		wantErr string
	}{
		{name: "A key of the Secret's data is its decoded value.", value: "${secrets.cyclone-acme:git/data.token}", want: "s3cret"},
		{name: "A further path reads into the value as JSON.", value: "${secrets.cyclone-acme:git/data.json/user.id}", want: "111"},
		{name: "A list element is read by its index.", value: "${secrets.cyclone-acme:git/data.json/user.roles.1}", want: "admin"},
		{name: "What is not a string comes back as JSON.", value: "${secrets.cyclone-acme:git/data.json/user.uid}", want: "7"},
		{name: "A value that is no reference stays as it is.", value: "token ${secrets.cyclone-acme:git/data.token}", want: "token ${secrets.cyclone-acme:git/data.token}"},
		{name: "Another namespace's Secret is refused: tenants do not read each other's credentials.",
			value: "${secrets.cyclone-other:git/data.token}", wantErr: "refers to namespace cyclone-other; a run may read Secrets of its own namespace cyclone-acme only"},
		{name: "A missing Secret is named.", value: "${secrets.cyclone-acme:nope/data.token}", wantErr: "Secret cyclone-acme/nope not found"},
		{name: "A missing key is named.", value: "${secrets.cyclone-acme:git/data.nope}", wantErr: `secret git has no data key "nope"`},
		{name: "A path into a value that is not JSON is refused.", value: "${secrets.cyclone-acme:git/data.token/user}", wantErr: "data.token of Secret git is not JSON"},
		{name: "A missing field is named.", value: "${secrets.cyclone-acme:git/data.json/user.name}", wantErr: `no field "name" in "user.name"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			values := map[string]string{"SCM_AUTH": tt.value}
			var hidden []string
			hide := func(v string) string {
				hidden = append(hidden, v)
				return "stand-in-" + strconv.Itoa(len(hidden))
			}
			err := ResolveSecretRefs(values, "cyclone-acme", secrets, hide)
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				g.Expect(err.Error()).To(HavePrefix("SCM_AUTH: "), "the error names the value")
				g.Expect(err.Error()).NotTo(ContainSubstring("s3cret"))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			if tt.want == tt.value {
				g.Expect(values["SCM_AUTH"]).To(Equal(tt.want))
				g.Expect(hidden).To(BeEmpty())
				return
			}
			// The value goes to hide, for the run Secret; its stand-in
			// takes its place.
			g.Expect(hidden).To(Equal([]string{tt.want}))
			g.Expect(values["SCM_AUTH"]).To(Equal("stand-in-1"))
		})
	}
	g := NewWithT(t)
	g.Expect(SecretNames("cyclone-acme", "${secrets.cyclone-acme:git/data.token}", "plain", "${secrets.cyclone-other:x/data.y}")).To(Equal([]string{"git"}))
}
