package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/gyreops/gyre/render"
	"github.com/gyreops/gyre/source"
)

func newDiffCmd() *cobra.Command {
	var o diffOptions
	cmd := &cobra.Command{
		Use:   "diff --base REV [--head REV] [REPO_DIR]",
		Short: "Show what a change to a pipeline repository changes, target by target",
		Long: `Render every target of a pipeline repository at two revisions of its Git
repository and show, per tenant and cluster, the objects added, removed
and changed, with a unified YAML diff of each. REPO_DIR (default ".") may
be a directory inside the repository. Without --head, the working tree is
compared with --base. Secret values are never printed: a value that
changed shows as "*** (before)" and "*** (after)". No cluster is needed.

--output markdown is ready to paste into a pull request comment.

With --live, the objects are compared with what is live in the cluster
of --kubeconfig instead: each is applied server-side as a dry run, so the
diff shows what applying would change after defaulting and admission, and
live objects of a target that the repository no longer has show as
removed (they would be pruned).

Exit status: 0 no change, 1 changes, 2 error (including a head revision
that does not render).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.base == "" && !o.live {
				return errors.New("--base or --live is required")
			}
			if o.base != "" && o.live {
				return errors.New("--base and --live exclude each other")
			}
			if err := o.policy.prepare(); err != nil {
				return err
			}
			switch o.output {
			case "text", "markdown", "json":
			default:
				return fmt.Errorf("--output must be text, markdown or json, not %q", o.output)
			}
			diff := diffRevisions
			if o.live {
				diff = diffLive
			}
			d, err := diff(cmd.Context(), repoDir(args), o, progress(cmd))
			if err != nil {
				return err
			}
			if n := writeErrors(cmd.ErrOrStderr(), d.headResults); n > 0 {
				return &ExitError{Code: 2, Err: fmt.Errorf("%s does not render: %s", d.Head, problemsError(n, d.headResults))}
			}
			w := cmd.OutOrStdout()
			switch o.output {
			case "json":
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				err = enc.Encode(d)
			case "markdown":
				err = writeDiffMarkdown(w, d)
			default:
				err = writeDiffText(w, d)
			}
			if err != nil {
				return err
			}
			if d.Changed {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.base, "base", "", "revision to compare against: a branch, tag or commit")
	f.StringVar(&o.head, "head", "", "revision to compare (default: the working tree)")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text, markdown or json")
	f.BoolVar(&o.live, "live", false, "compare with the objects live in a cluster (server-side dry-run apply) instead of --base")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster for --live (default: $KUBECONFIG, ~/.kube/config)")
	o.policy.addFlags(cmd)
	return cmd
}

type diffOptions struct {
	base, head, output string
	live               bool
	kubeconfig         string
	policy             reviewPolicy
}

// repoDiff is what gyre diff found; its JSON form is --output json.
type repoDiff struct {
	Base    string       `json:"base"`
	Head    string       `json:"head"`
	Changed bool         `json:"changed"`
	Targets []targetDiff `json:"targets"`
	// Unchanged counts the targets with no change.
	Unchanged int `json:"unchanged"`

	headResults []*render.Result
}

// targetDiff is one target's changes.
type targetDiff struct {
	Tenant  string         `json:"tenant"`
	Cluster string         `json:"cluster"`
	Added   []objectChange `json:"added"`
	Removed []objectChange `json:"removed"`
	Changed []objectChange `json:"changed"`
	// BaseErrors is set when the target did not render at the base
	// revision; the diff then treats the base as empty.
	BaseErrors int `json:"baseErrors,omitempty"`
}

func (t targetDiff) name() string { return t.Tenant + "/" + t.Cluster }

// objectChange is one object added, removed or changed, with its unified
// diff (Secret values masked).
type objectChange struct {
	ID   string `json:"id"`
	Diff string `json:"diff"`
}

// workingTree names the head of a diff without --head.
const workingTree = "working tree"

// diffRevisions renders the repository at --base and at --head (or the
// working tree) and compares them.
func diffRevisions(ctx context.Context, dir string, o diffOptions, progress io.Writer) (*repoDiff, error) {
	co, err := newCheckouts(dir)
	if err != nil {
		return nil, err
	}
	defer co.close()
	baseRoot, err := co.at(ctx, o.base, progress)
	if err != nil {
		return nil, err
	}
	headRoot, headName := co.abs, workingTree
	if o.head != "" {
		if headRoot, err = co.at(ctx, o.head, progress); err != nil {
			return nil, err
		}
		headName = o.head
	}
	base, err := renderAllOrNone(ctx, baseRoot, &o.policy, progress)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", o.base, err)
	}
	head, err := renderAllOrNone(ctx, headRoot, &o.policy, progress)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", headName, err)
	}
	d := compareResults(base, head)
	d.Base, d.Head, d.headResults = o.base, headName, head
	return d, nil
}

// checkouts checks out revisions of the Git repository that holds a
// directory, into a scratch cache, and finds that directory in each.
type checkouts struct {
	abs   string // the directory, absolute
	top   string // the repository's top level
	rel   string // the directory below top
	cache string
}

func newCheckouts(dir string) (*checkouts, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	top, err := gitTopLevel(abs)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(top, abs)
	if err != nil {
		return nil, err
	}
	cache, err := os.MkdirTemp("", "gyre-diff-")
	if err != nil {
		return nil, err
	}
	return &checkouts{abs: abs, top: top, rel: rel, cache: cache}, nil
}

// at checks rev out and returns the directory in it.
func (c *checkouts) at(ctx context.Context, rev string, progress io.Writer) (string, error) {
	fmt.Fprintf(progress, "Checking out %s\n", rev)
	dir, err := checkoutLocal(ctx, c.top, rev, c.cache)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, c.rel), nil
}

func (c *checkouts) close() { _ = os.RemoveAll(c.cache) }

// checkoutLocal checks rev of the repository at top out under cache and
// returns the checkout's directory.
func checkoutLocal(ctx context.Context, top, rev, cache string) (string, error) {
	art, err := source.LocalCommit{Repo: top, Rev: rev, CacheDir: cache}.Artifact(ctx)
	if err != nil {
		return "", err
	}
	return art.Dir, nil
}

// renderAllOrNone renders every target, or none when the revision has no
// tenants yet (a repository's first pipelines are all additions).
func renderAllOrNone(ctx context.Context, root string, policy *reviewPolicy, progress io.Writer) ([]*render.Result, error) {
	if _, err := os.Stat(filepath.Join(root, render.TenantsDir)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return renderRepo(ctx, root, targetSelector{}, policy, progress)
}

// gitTopLevel returns the work tree root of the Git repository holding
// dir.
func gitTopLevel(dir string) (string, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return "", fmt.Errorf("%s is not in a Git repository: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", fmt.Errorf("%s: %w", dir, err)
	}
	return wt.Filesystem.Root(), nil
}

// compareResults pairs targets by tenant and cluster and objects by kind
// and name (a target's objects share one namespace).
func compareResults(base, head []*render.Result) *repoDiff {
	type pair struct {
		target     render.Target
		base, head *render.Result
	}
	// Keyed by "tenant/cluster": the rest of a Target is how it renders.
	pairs := map[string]*pair{}
	for _, r := range base {
		pairs[r.Target.String()] = &pair{target: r.Target, base: r}
	}
	for _, r := range head {
		p := pairs[r.Target.String()]
		if p == nil {
			p = &pair{target: r.Target}
			pairs[r.Target.String()] = p
		}
		p.head = r
	}
	keys := make([]string, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	d := &repoDiff{Targets: []targetDiff{}}
	for _, k := range keys {
		p := pairs[k]
		t := p.target
		td := targetDiff{Tenant: t.Tenant, Cluster: t.Cluster, Added: []objectChange{}, Removed: []objectChange{}, Changed: []objectChange{}}
		before, after := objectsByID(p.base), objectsByID(p.head)
		if p.base != nil {
			td.BaseErrors = len(p.base.Errors)
		}
		ids := make([]string, 0, len(before)+len(after))
		for id := range before {
			ids = append(ids, id)
		}
		for id := range after {
			if _, ok := before[id]; !ok {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			b, a := maskSecretPair(before[id], after[id])
			text := unifiedDiff(t.String()+"/"+id, toYAML(b), toYAML(a))
			switch {
			case before[id] == nil:
				td.Added = append(td.Added, objectChange{ID: id, Diff: text})
			case after[id] == nil:
				td.Removed = append(td.Removed, objectChange{ID: id, Diff: text})
			case text != "":
				td.Changed = append(td.Changed, objectChange{ID: id, Diff: text})
			}
		}
		if len(td.Added)+len(td.Removed)+len(td.Changed) == 0 {
			d.Unchanged++
			continue
		}
		d.Changed = true
		d.Targets = append(d.Targets, td)
	}
	return d
}

func objectsByID(r *render.Result) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	if r == nil {
		return m
	}
	for _, o := range r.Objects {
		m[objectKey(o)] = o
	}
	return m
}

// objectKey names an object within its target: Kind/name, with the API
// group for kinds outside cyclone.dev and the core group.
func objectKey(o *unstructured.Unstructured) string {
	if g := o.GroupVersionKind().Group; g != "" && g != "cyclone.dev" {
		return o.GetKind() + "." + g + "/" + o.GetName()
	}
	return o.GetKind() + "/" + o.GetName()
}

// Masks for Secret values: the diff says whether a value changed, never
// what it is.
const (
	maskUnchanged = "***"
	maskBefore    = "*** (before)"
	maskAfter     = "*** (after)"
)

// maskSecretPair returns copies of a Secret's two versions (either may be
// nil) with every data and stringData value replaced by a mask that only
// tells whether it changed. Other objects are returned as they are.
func maskSecretPair(before, after *unstructured.Unstructured) (*unstructured.Unstructured, *unstructured.Unstructured) {
	isSecret := func(o *unstructured.Unstructured) bool {
		return o != nil && o.GetKind() == "Secret" && o.GroupVersionKind().Group == ""
	}
	if !isSecret(before) && !isSecret(after) {
		return before, after
	}
	if before != nil {
		before = before.DeepCopy()
	}
	if after != nil {
		after = after.DeepCopy()
	}
	for _, field := range []string{"data", "stringData"} {
		b, a := stringMap(before, field), stringMap(after, field)
		for k, bv := range b {
			av, ok := a[k]
			switch {
			case ok && av == bv:
				b[k], a[k] = maskUnchanged, maskUnchanged
			case ok:
				b[k], a[k] = maskBefore, maskAfter
			default:
				b[k] = maskUnchanged
			}
		}
		for k := range a {
			if _, ok := b[k]; !ok {
				a[k] = maskUnchanged
			}
		}
		if before != nil && b != nil {
			before.Object[field] = b
		}
		if after != nil && a != nil {
			after.Object[field] = a
		}
	}
	return before, after
}

// stringMap returns a copy of a map field as strings, or nil.
func stringMap(o *unstructured.Unstructured, field string) map[string]any {
	if o == nil {
		return nil
	}
	m, ok := o.Object[field].(map[string]any)
	if !ok {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func toYAML(o *unstructured.Unstructured) string {
	if o == nil {
		return ""
	}
	b, err := yaml.Marshal(o.Object)
	if err != nil {
		return fmt.Sprintf("# cannot show %s: %v\n", objectKey(o), err)
	}
	return string(b)
}

func unifiedDiff(name, a, b string) string {
	if a == b {
		return ""
	}
	from, to := "a/"+name, "b/"+name
	if a == "" {
		from = "/dev/null"
	}
	if b == "" {
		to = "/dev/null"
	}
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: splitLines(a), B: splitLines(b),
		FromFile: from, ToFile: to, Context: 3,
	})
	if err != nil {
		return fmt.Sprintf("# cannot diff %s: %v\n", name, err)
	}
	return text
}

// splitLines splits text into lines that keep their newlines. Unlike
// difflib.SplitLines it adds no empty line after a final newline, and
// empty text has no lines at all.
func splitLines(text string) []string {
	if text == "" {
		return nil
	}
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] += "\n"
	}
	return lines
}

func (d *repoDiff) totals() (added, removed, changed int) {
	for _, t := range d.Targets {
		added += len(t.Added)
		removed += len(t.Removed)
		changed += len(t.Changed)
	}
	return
}

func writeDiffText(w io.Writer, d *repoDiff) error {
	var b strings.Builder
	fmt.Fprintf(&b, "gyre diff %s..%s\n", d.Base, d.Head)
	for _, t := range d.Targets {
		fmt.Fprintf(&b, "\n%s: %d added, %d removed, %d changed\n", t.name(), len(t.Added), len(t.Removed), len(t.Changed))
		if t.BaseErrors > 0 {
			fmt.Fprintf(&b, "  (did not render at %s: every object shows as added)\n", d.Base)
		}
		for _, c := range t.Added {
			fmt.Fprintf(&b, "  + %s\n", c.ID)
		}
		for _, c := range t.Removed {
			fmt.Fprintf(&b, "  - %s\n", c.ID)
		}
		for _, c := range t.Changed {
			fmt.Fprintf(&b, "  ~ %s\n", c.ID)
		}
		for _, list := range [][]objectChange{t.Added, t.Removed, t.Changed} {
			for _, c := range list {
				b.WriteString("\n")
				b.WriteString(c.Diff)
			}
		}
	}
	b.WriteString("\n")
	b.WriteString(d.summary())
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (d *repoDiff) summary() string {
	if !d.Changed {
		return fmt.Sprintf("No changes to any of the %s.", plural(d.Unchanged, "target"))
	}
	a, r, c := d.totals()
	return fmt.Sprintf("%s changed, %d unchanged: %d added, %d removed, %d changed.", plural(len(d.Targets), "target"), d.Unchanged, a, r, c)
}

func writeDiffMarkdown(w io.Writer, d *repoDiff) error {
	var b strings.Builder
	fmt.Fprintf(&b, "### gyre diff `%s` → `%s`\n\n", d.Base, d.Head)
	if !d.Changed {
		fmt.Fprintf(&b, "%s\n", d.summary())
		_, err := io.WriteString(w, b.String())
		return err
	}
	b.WriteString("| Target | Added | Removed | Changed |\n|---|---:|---:|---:|\n")
	for _, t := range d.Targets {
		fmt.Fprintf(&b, "| `%s` | %d | %d | %d |\n", t.name(), len(t.Added), len(t.Removed), len(t.Changed))
	}
	fmt.Fprintf(&b, "\n%s\n", d.summary())
	for _, t := range d.Targets {
		fmt.Fprintf(&b, "\n<details><summary><code>%s</code>: %d added, %d removed, %d changed</summary>\n\n", t.name(), len(t.Added), len(t.Removed), len(t.Changed))
		if t.BaseErrors > 0 {
			fmt.Fprintf(&b, "The target did not render at `%s`: every object shows as added.\n\n", d.Base)
		}
		for _, list := range []struct {
			verb    string
			changes []objectChange
		}{{"Added", t.Added}, {"Removed", t.Removed}, {"Changed", t.Changed}} {
			for _, c := range list.changes {
				fmt.Fprintf(&b, "**%s** `%s`\n\n````diff\n%s````\n\n", list.verb, c.ID, c.Diff)
			}
		}
		b.WriteString("</details>\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
