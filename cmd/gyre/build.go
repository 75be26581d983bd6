package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"github.com/gyreops/gyre/internal/podsecurity"
	"github.com/gyreops/gyre/render"
)

func newBuildCmd() *cobra.Command {
	var sel targetSelector
	var policy reviewPolicy
	cmd := &cobra.Command{
		Use:   "build [REPO_DIR]",
		Short: "Render a pipeline repository's targets as YAML",
		Long: `Render every target of a pipeline repository (REPO_DIR, default ".") as
gyre would apply it, or only those of --tenant and --cluster. Each target's
objects follow a "# target: tenant/cluster" comment. Nothing is printed on
stdout unless every selected target renders; errors go to stderr.

Exit status: 0 rendered, 1 the repository is invalid, 2 gyre failed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := policy.prepare(); err != nil {
				return err
			}
			root := repoDir(args)
			results, err := renderRepo(cmd.Context(), root, sel, &policy, progress(cmd))
			if err != nil {
				return err
			}
			writeWarnings(cmd.ErrOrStderr(), results)
			if n := writeErrors(cmd.ErrOrStderr(), results); n > 0 {
				return &ExitError{Code: 1, Err: problemsError(n, results)}
			}
			return writeTargets(cmd.OutOrStdout(), results)
		},
	}
	sel.addFlags(cmd)
	policy.addFlags(cmd)
	return cmd
}

// podSecurityLevel is the --pod-security flag: the Pod Security level
// the commands render at, since they read no Tenant object to take it
// from. Baseline, a Tenant's default, when not given.
type podSecurityLevel string

func (l *podSecurityLevel) addFlag(cmd *cobra.Command) {
	*l = podSecurityLevel(podsecurity.DefaultLevel)
	cmd.Flags().StringVar((*string)(l), "pod-security", podsecurity.DefaultLevel,
		"Pod Security level to check stages and runs at, as a Tenant's spec.podSecurity: restricted, baseline or privileged")
}

// validate refuses a level that is not one of the three.
func (l podSecurityLevel) validate() error {
	switch string(l) {
	case podsecurity.Restricted, podsecurity.Baseline, podsecurity.Privileged:
		return nil
	}
	return fmt.Errorf("--pod-security must be restricted, baseline or privileged, not %q", string(l))
}

// targetSelector narrows a command to some targets of a repository.
type targetSelector struct {
	tenant, cluster string
}

func (s *targetSelector) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.tenant, "tenant", "", "only this tenant's targets")
	cmd.Flags().StringVar(&s.cluster, "cluster", "", "only this cluster's targets")
}

func (s targetSelector) wants(t render.Target) bool {
	return (s.tenant == "" || t.Tenant == s.tenant) && (s.cluster == "" || t.Cluster == s.cluster)
}

func repoDir(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return "."
}

// renderRepo renders the selected targets of the repository at root and
// checks them for conflicts. Conflicts are found among all the targets of
// the selected tenants, since a tenant's clusters share its namespace, so
// those are rendered even when --cluster leaves them out of the result.
// Every target is checked against policy.
func renderRepo(ctx context.Context, root string, sel targetSelector, policy *reviewPolicy, progress io.Writer) ([]*render.Result, error) {
	targets, err := render.Discover(root)
	if err != nil {
		return nil, err
	}
	var todo []render.Target
	for _, t := range targets {
		if sel.tenant == "" || t.Tenant == sel.tenant {
			policy.apply(&t)
			todo = append(todo, t)
		}
	}
	if len(todo) == 0 {
		return nil, fmt.Errorf("no targets in %s match --tenant %q --cluster %q", root, sel.tenant, sel.cluster)
	}
	r := render.NewRenderer()
	results := make([]*render.Result, len(todo))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, t := range todo {
		g.Go(func() error {
			fmt.Fprintf(progress, "Rendering %s\n", t)
			res, err := r.Render(ctx, root, t, render.Options{})
			results[i] = res
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	render.MarkConflicts(results)
	var out []*render.Result
	for _, res := range results {
		if sel.wants(res.Target) {
			out = append(out, res)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no targets in %s match --tenant %q --cluster %q", root, sel.tenant, sel.cluster)
	}
	return out, nil
}

func writeTargets(w io.Writer, results []*render.Result) error {
	for _, res := range results {
		if _, err := fmt.Fprintf(w, "# target: %s (%s)\n", res.Target, res.Dir); err != nil {
			return err
		}
		if err := render.WriteYAML(w, res.Objects); err != nil {
			return err
		}
	}
	return nil
}

// progress returns where to report progress: stderr when it is a
// terminal, so that scripts and CI logs get only the result.
func progress(cmd *cobra.Command) io.Writer {
	if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return io.Discard
}
