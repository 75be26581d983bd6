package main

import (
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
)

func TestValidate_exampleIsValid(t *testing.T) {
	g := NewWithT(t)
	// Its image builds warn: TestValidate_exampleWarnsOnlyAboutImageBuilds.
	_, stderr, code := execute(t, "validate", exampleRepo)
	g.Expect(code).To(Equal(0))
	g.Expect(stderr).To(BeEmpty())
}

func TestValidate_reportsEveryProblem(t *testing.T) {
	g := NewWithT(t)
	stdout, stderr, code := execute(t, "validate", "testdata/validate-invalid/repo")
	g.Expect(code).To(Equal(1))
	g.Expect(stderr).To(BeEmpty(), "main prints the ExitError, not the command")
	golden(t, "validate-invalid/want.txt", stdout)
}

func TestValidate_json(t *testing.T) {
	g := NewWithT(t)
	stdout, _, code := execute(t, "validate", "--output", "json", "testdata/validate-invalid/repo")
	g.Expect(code).To(Equal(1))
	var v validation
	g.Expect(json.Unmarshal([]byte(stdout), &v)).To(Succeed())
	g.Expect(v.Valid).To(BeFalse())
	g.Expect(v.Targets).To(HaveLen(3))
	golden(t, "validate-invalid/want.json", stdout)

	stdout, _, code = execute(t, "validate", "-o", "json", exampleRepo)
	g.Expect(code).To(Equal(0))
	g.Expect(json.Unmarshal([]byte(stdout), &v)).To(Succeed())
	g.Expect(v.Valid).To(BeTrue())
	g.Expect(v.Targets).To(HaveLen(7))
}

func TestValidate_rejectsAnUnknownOutput(t *testing.T) {
	g := NewWithT(t)
	_, stderr, code := execute(t, "validate", "-o", "yaml", exampleRepo)
	g.Expect(code).To(Equal(2))
	g.Expect(stderr).To(ContainSubstring("--output must be text or json"))
}
