package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/gyreops/gyre/render"
)

func newValidateCmd() *cobra.Command {
	var output string
	var policy reviewPolicy
	cmd := &cobra.Command{
		Use:   "validate [REPO_DIR]",
		Short: "Check that every target of a pipeline repository renders and is valid",
		Long: `Render every target of a pipeline repository (REPO_DIR, default ".") and
report every problem, one per line, as "file: Kind/name: field: message":
files gyre refuses, objects that break their CRD schema or tenancy, Cyclone
references that lead nowhere, workflows that are not DAGs, cron schedules
that do not parse, objects two targets both render, and stages or runs
that break the Pod Security level of --pod-security (baseline unless
told: a Tenant's spec.podSecurity decides in the cluster) or name a
namespace, PVC or ServiceAccount that is not the tenant's, and stages
that name their node. With --tenants, the Tenant objects it holds decide
for their tenants, as in the cluster: their level, and the tolerations,
priority and runtime classes their spec.scheduling allows.

Warnings, prefixed "warning: ", say what the level will stop at run
time though the YAML is valid, such as an image build below
privileged; they do not change the exit status.

Exit status: 0 valid, 1 invalid, 2 gyre failed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", output)
			}
			if err := policy.prepare(); err != nil {
				return err
			}
			results, err := renderRepo(cmd.Context(), repoDir(args), targetSelector{}, &policy, progress(cmd))
			if err != nil {
				return err
			}
			var n int
			if output == "json" {
				n, err = writeValidationJSON(cmd.OutOrStdout(), results)
			} else {
				n = writeErrors(cmd.OutOrStdout(), results)
				writeWarnings(cmd.OutOrStdout(), results)
			}
			if err != nil {
				return err
			}
			if n > 0 {
				return &ExitError{Code: 1, Err: problemsError(n, results)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	policy.addFlags(cmd)
	return cmd
}

// uniqueErrors returns the results' errors sorted and without repeats: a
// problem in a shared base shows once, not once per target.
func uniqueErrors(results []*render.Result) []string {
	seen := map[string]bool{}
	var lines []string
	for _, res := range results {
		for _, e := range res.Errors {
			if l := e.Error(); !seen[l] {
				seen[l] = true
				lines = append(lines, l)
			}
		}
	}
	sort.Strings(lines)
	return lines
}

// uniqueWarnings returns the results' warnings as uniqueErrors does
// errors.
func uniqueWarnings(results []*render.Result) []string {
	seen := map[string]bool{}
	var lines []string
	for _, res := range results {
		for _, w := range res.Warnings {
			if l := w.Error(); !seen[l] {
				seen[l] = true
				lines = append(lines, l)
			}
		}
	}
	sort.Strings(lines)
	return lines
}

// writeWarnings writes the results' unique warnings, one per line,
// each prefixed "warning: ".
func writeWarnings(w io.Writer, results []*render.Result) {
	for _, l := range uniqueWarnings(results) {
		fmt.Fprintln(w, "warning: "+l)
	}
}

// writeErrors writes the results' unique errors, one per line, and
// returns how many it wrote.
func writeErrors(w io.Writer, results []*render.Result) int {
	lines := uniqueErrors(results)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return len(lines)
}

// problemsError summarises n problems for the exit message.
func problemsError(n int, results []*render.Result) error {
	failed := 0
	for _, res := range results {
		if len(res.Errors) > 0 {
			failed++
		}
	}
	return fmt.Errorf("%s in %d of %s", plural(n, "problem"), failed, plural(len(results), "target"))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// validation is the JSON form of gyre validate's result.
type validation struct {
	Valid  bool `json:"valid"`
	Errors int  `json:"errors"`
	// Warnings counts the targets' warnings, which leave it valid.
	Warnings int                `json:"warnings"`
	Targets  []targetValidation `json:"targets"`
}

type targetValidation struct {
	Tenant  string         `json:"tenant"`
	Cluster string         `json:"cluster"`
	Dir     string         `json:"dir,omitempty"`
	Objects int            `json:"objects"`
	Digest  string         `json:"digest,omitempty"`
	Errors  []render.Error `json:"errors"`
	// Warnings are left out when there are none, so that output of
	// repositories without them reads as before.
	Warnings []render.Error `json:"warnings,omitempty"`
}

func writeValidationJSON(w io.Writer, results []*render.Result) (int, error) {
	v := validation{Valid: true, Targets: []targetValidation{}}
	for _, res := range results {
		t := targetValidation{
			Tenant:   res.Target.Tenant,
			Cluster:  res.Target.Cluster,
			Dir:      res.Dir,
			Objects:  len(res.Objects),
			Digest:   res.Digest,
			Errors:   append([]render.Error{}, res.Errors...),
			Warnings: res.Warnings,
		}
		v.Errors += len(res.Errors)
		v.Warnings += len(res.Warnings)
		v.Targets = append(v.Targets, t)
	}
	v.Valid = v.Errors == 0
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return len(uniqueErrors(results)), enc.Encode(v)
}
