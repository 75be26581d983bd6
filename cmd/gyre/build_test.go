package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// exampleRepo is the example pipeline repository.
const exampleRepo = "../../testdata/repos/example"

// execute runs one gyre command line in-process and returns its stdout,
// stderr and exit code, the code main would exit with.
func execute(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	var exit *ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.Code
	default:
		errOut.WriteString("gyre: " + err.Error() + "\n")
		code = 2
	}
	return out.String(), errOut.String(), code
}

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/gyre -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test ./cmd/gyre -update rewrites it); got:\n%s", path, got)
	}
}

func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		name, golden string
		args         []string
	}{
		{"Every target of the example renders.", "build-all/want.yaml", []string{"build", exampleRepo}},
		{"One tenant's targets render.", "build-tenant/want.yaml", []string{"build", "--tenant", "payments", exampleRepo}},
		{"One target renders.", "build-target/want.yaml", []string{"build", "--tenant", "shop", "--cluster", "prod", exampleRepo}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			stdout, stderr, code := execute(t, tc.args...)
			// The example's image builds warn at the default level.
			for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
				g.Expect(l).To(Or(BeEmpty(), HavePrefix("warning: ")))
			}
			g.Expect(code).To(Equal(0))
			golden(t, tc.golden, stdout)
		})
	}
}

func TestBuild_printsNothingWhenATargetIsInvalid(t *testing.T) {
	g := NewWithT(t)
	stdout, stderr, code := execute(t, "build", "testdata/validate-invalid/repo")
	g.Expect(code).To(Equal(1))
	g.Expect(stdout).To(BeEmpty())
	g.Expect(stderr).To(ContainSubstring(`tenants/alpha/two/trigger.yaml: WorkflowTrigger/nightly: spec.cron.schedule: invalid schedule "every night"`))
}

func TestBuild_unknownTenantIsAnError(t *testing.T) {
	g := NewWithT(t)
	_, stderr, code := execute(t, "build", "--tenant", "nobody", exampleRepo)
	g.Expect(code).To(Equal(2))
	g.Expect(stderr).To(ContainSubstring(`no targets in ../../testdata/repos/example match --tenant "nobody"`))
}
