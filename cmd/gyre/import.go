package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gyreops/gyre/internal/cycloneimport"
)

// newImportCmd writes a pipeline repository from a running Cyclone.
func newImportCmd() *cobra.Command {
	var (
		kubeconfig, out string
		recipients      []string
		level           podSecurityLevel
		o               cycloneimport.Options
	)
	cmd := &cobra.Command{
		Use:   "import --tenant T [--tenant U]... --out DIR",
		Short: "Write a pipeline repository from a running Cyclone's tenants",
		Long: `Read the Cyclone objects of each tenant from its namespace cyclone-<tenant>
(Projects, Resources, Stages, Workflows, WorkflowTriggers; WorkflowRuns with
--runs) and write a repository gyre applies as it is:

  tenants/<tenant>/base/   the objects without server-set fields, one file per kind
  gyre/                    the Repository and Tenants: kubectl apply -k DIR/gyre
  by-hand/<namespace>/     Secrets they refer to, as placeholders without values
                           (encrypted whole with --age-recipient), to apply by hand
  left-out/<tenant>/       objects gyre's render refuses, with the reasons listed
  README.md                what to do next

Progress goes to stderr; what was written, and everything not carried over
as it was, to stdout. DIR must be empty or new.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := level.validate(); err != nil {
				return err
			}
			o.PodSecurity = string(level)
			for _, r := range recipients {
				rec, err := cycloneimport.ParseRecipient(r)
				if err != nil {
					return fmt.Errorf("--age-recipient %q: %w", r, err)
				}
				o.AgeRecipients = append(o.AgeRecipients, rec)
			}
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			o.Progress = cmd.ErrOrStderr()
			rep, err := cycloneimport.Import(cmd.Context(), cfg, out, o)
			if err != nil {
				return err
			}
			return writeImportReport(cmd.OutOrStdout(), out, rep, o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Tenants, "tenant", nil, "Cyclone tenant to import, from namespace cyclone-<tenant>; repeatable")
	f.StringVar(&out, "out", "", "directory to write the repository to (empty or new)")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of Cyclone's cluster (default: $KUBECONFIG, ~/.kube/config)")
	f.BoolVar(&o.Runs, "runs", false, "import WorkflowRuns too; gyre starts each run it applies once more")
	f.StringVar(&o.RepoURL, "repo-url", "", "Git URL for the Repository manifest (default: a placeholder to fill in)")
	f.StringVar(&o.Repository, "repo-name", cycloneimport.DefaultRepository, "name of the Repository the Tenants follow")
	f.StringArrayVar(&recipients, "age-recipient", nil, "age recipient (age1...) or SSH public key (ssh-ed25519 ...) to encrypt the referenced Secrets, values included, to; repeatable")
	// The name the migration guides of other tools use for the same key.
	f.StringArrayVar(&recipients, "sops-age-recipient", nil, "same as --age-recipient")
	_ = f.MarkHidden("sops-age-recipient")
	level.addFlag(cmd)
	_ = cmd.MarkFlagRequired("tenant")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// writeImportReport prints what an import wrote, then every note, so the
// last lines a user sees are what still needs them.
func writeImportReport(w io.Writer, dir string, rep *cycloneimport.Report, o cycloneimport.Options) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("Wrote %s:", dir)
	for _, t := range rep.Tenants {
		line := fmt.Sprintf("  tenant %s: %s in tenants/%s/base", t.Tenant, kinds(t.Objects), t.Tenant)
		if len(t.LeftOut) > 0 {
			line += fmt.Sprintf("; %s left out in %s/%s", kinds(t.LeftOut), cycloneimport.LeftOutDir, t.Tenant)
		}
		if len(t.ByHand) > 0 {
			line += fmt.Sprintf("; %d files to apply by hand in %s/", len(t.ByHand), cycloneimport.ByHandDir)
		}
		p("%s", line)
	}
	url := o.RepoURL
	if url == "" {
		url = "a placeholder URL to fill in"
	}
	tenants := "Tenants"
	if len(rep.Tenants) == 1 {
		tenants = "Tenant"
	}
	p("  %s/: Repository %s (%s) and %d %s; apply with kubectl apply -k %s/%s", cycloneimport.GyreDir, o.Repository, url, len(rep.Tenants), tenants, dir, cycloneimport.GyreDir)
	p("  README.md: the next steps")
	if len(rep.Notes) == 0 {
		p("Everything was carried over as it was.")
		return nil
	}
	p("Not carried over as it was (%d):", len(rep.Notes))
	for _, n := range rep.Notes {
		p("  %-8s  %s", n.Action, n)
	}
	return nil
}

// kinds says "12 objects (Project 1, Stage 11)".
func kinds(m map[string]int) string {
	total := 0
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		total += m[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	word := "objects"
	if total == 1 {
		word = "object"
	}
	if total == 0 {
		return "no objects"
	}
	return fmt.Sprintf("%d %s (%s)", total, word, strings.Join(parts, ", "))
}
