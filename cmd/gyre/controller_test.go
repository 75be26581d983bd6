package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/spf13/pflag"

	"github.com/gyreops/gyre/exec"
)

func TestController_badFlagsStopItNamingTheFlag(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(token, []byte("xoxb-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{name: "A secret file that cannot be read stops the controller, naming the flag.",
			args:       []string{"--slack-token-file", filepath.Join(dir, "missing")},
			wantStderr: "gyre: --slack-token-file: open " + filepath.Join(dir, "missing") + ": no such file or directory\n"},
		{name: "An empty secret file stops the controller, naming the flag.",
			args:       []string{"--smtp-password-file", empty},
			wantStderr: "gyre: --smtp-password-file: " + empty + " is empty\n"},
		{name: "An SMTP server without a sender address stops the controller.",
			args:       []string{"--smtp-addr", "mail.example.com:587", "--slack-token-file", token},
			wantStderr: "gyre: --smtp-addr needs --smtp-from\n"},
		{name: "An allowed outbound entry that is neither a host nor a CIDR stops the controller, naming the flag.",
			args:       []string{"--allow-outbound", "hooks.example.com,10.0.0.0/33"},
			wantStderr: "gyre: --allow-outbound: allowed outbound \"10.0.0.0/33\": neither a host name nor a CIDR\n"},
		{name: "A Pod range that is no CIDR stops the controller, naming the flag.",
			args:       []string{"--service-cidr", "10.96.0.0/12", "--pod-cidr", "pods"},
			wantStderr: "gyre: --pod-cidr: cluster CIDR \"pods\": netip.ParsePrefix(\"pods\"): no '/'\n"},
		{name: "An empty shard stops the controller, pointing at leaving the flag out.",
			args:       []string{"--shard", ""},
			wantStderr: "gyre: --shard: shard name is empty: leave --shard out to handle the Repositories and Tenants without the gyre.dev/shard label\n"},
		{name: "A shard that is no label value stops the controller, naming the label.",
			args:       []string{"--shard", "eu/west"},
			wantStderr: "gyre: --shard: shard name \"eu/west\" is not a valid value of label gyre.dev/shard: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, stderr, code := execute(t, append([]string{"controller"}, tt.args...)...)
			g.Expect(code).To(Equal(2))
			g.Expect(stderr).To(Equal(tt.wantStderr))
		})
	}
}

func TestReadSecretFile_dropsTheLineEnd(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "password")
	g.Expect(os.WriteFile(path, []byte("s3cret\r\n"), 0o600)).To(Succeed())
	got, err := readSecretFile("--smtp-password-file", path)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal("s3cret"))
}

func TestImageFlags(t *testing.T) {
	g := NewWithT(t)
	f := pflag.NewFlagSet("controller", pflag.ContinueOnError)
	var c exec.Config
	imageFlags(f, &c)
	g.Expect(f.Parse([]string{
		"--resolver-image", "Image=cyclone-resolver-image:v1,Svn=cyclone-resolver-svn:v1",
		"--coordinator-image", "registry.local/gyre:v2",
		"--gc-image", "registry.local/busybox:1",
		"--dind-image", "registry.local/docker:dind",
		"--dind-insecure-registry", "registry.local:5000", "--dind-insecure-registry", "10.0.0.5:5000",
	})).To(Succeed())
	g.Expect(c.ResolverImages).To(Equal(map[string]string{"Image": "cyclone-resolver-image:v1", "Svn": "cyclone-resolver-svn:v1"}))
	g.Expect(c.CoordinatorImage).To(Equal("registry.local/gyre:v2"))
	g.Expect(c.GCImage).To(Equal("registry.local/busybox:1"))
	g.Expect(c.DindImage).To(Equal("registry.local/docker:dind"))
	g.Expect(c.DindInsecureRegistries).To(Equal([]string{"registry.local:5000", "10.0.0.5:5000"}))
	g.Expect(c.NoDind).To(BeFalse())
	g.Expect(c.DefaultResolverImage).To(BeEmpty(), "unset: the engine's default")
}

func TestRunFlags(t *testing.T) {
	g := NewWithT(t)
	f := pflag.NewFlagSet("controller", pflag.ContinueOnError)
	var c exec.Config
	runFlags(f, &c)
	g.Expect(c.MissingGracePeriod).To(Equal(30*time.Second), "the default")
	g.Expect(c.RunningReportDelay).To(Equal(time.Second), "the default")
	g.Expect(c.MaxRunningReportDelay).To(Equal(5*time.Second), "the default")
	g.Expect(f.Parse([]string{"--tenant-parallelism", "4", "--missing-grace-period", "1m", "--status-report-delay", "2s", "--status-report-max-delay", "2s"})).To(Succeed())
	g.Expect(c.TenantParallelism).To(Equal(4))
	g.Expect(c.MissingGracePeriod).To(Equal(time.Minute))
	g.Expect(c.RunningReportDelay).To(Equal(2 * time.Second))
	g.Expect(c.MaxRunningReportDelay).To(Equal(2 * time.Second))
}

func TestOutboundGuard_refusesTheClusterRanges(t *testing.T) {
	g := NewWithT(t)
	guard, err := outboundGuard([]string{"10.96.0.10"}, []string{"10.96.0.0/12"}, []string{"10.244.0.0/16"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(guard.Check(netip.MustParseAddr("10.96.0.1"))).To(MatchError(ContainSubstring("in the cluster's range 10.96.0.0/12")))
	g.Expect(guard.Check(netip.MustParseAddr("10.244.1.2"))).To(MatchError(ContainSubstring("in the cluster's range 10.244.0.0/16")))
	g.Expect(guard.Check(netip.MustParseAddr("10.96.0.10"))).To(Succeed(), "listed in --allow-outbound")
}
