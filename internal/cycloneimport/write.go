package cycloneimport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/render"
)

// Directories of an imported repository, relative to its root.
const (
	// GyreDir holds the Repository and Tenants to apply: kubectl apply -k.
	GyreDir = "gyre"
	// ByHandDir holds, per namespace, what is applied by hand: Secrets,
	// and what stage Pods read in the worker namespace.
	ByHandDir = "by-hand"
	// LeftOutDir holds, per tenant, the objects gyre's render refused.
	LeftOutDir = "left-out"
)

// write writes the repository: each tenant's base, checked with gyre's
// render, what is applied by hand, gyre/ and the README.
func write(ctx context.Context, dir string, tenants []*tenant, o Options) (*Report, error) {
	rep := &Report{}
	var tenantObjs []*unstructured.Unstructured
	for _, t := range tenants {
		fmt.Fprintf(o.Progress, "Writing tenant %s: %d objects to %s, checking them with gyre's render\n", t.name, len(t.objects), baseDir(t.name))
		if err := check(ctx, dir, t); err != nil {
			return nil, err
		}
		tr := TenantReport{Tenant: t.name, Objects: countKinds(t.objects)}
		if len(t.leftOut) > 0 {
			tr.LeftOut = countKinds(t.leftOut)
			if err := writeKinds(filepath.Join(dir, LeftOutDir, t.name), t.leftOut); err != nil {
				return nil, err
			}
		}
		files, err := writeByHand(dir, t, o.AgeRecipients)
		if err != nil {
			return nil, err
		}
		tr.ByHand = files
		rep.Tenants = append(rep.Tenants, tr)
		rep.Notes = append(rep.Notes, t.notes...)
		obj, err := toUnstructured(&gyrev1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: t.name}, Spec: t.spec}, "Tenant")
		if err != nil {
			return nil, err
		}
		tenantObjs = append(tenantObjs, obj)
	}
	sort.SliceStable(rep.Notes, func(i, j int) bool {
		a, b := rep.Notes[i], rep.Notes[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		if a.Action != b.Action {
			return a.Action.rank() < b.Action.rank()
		}
		if a.Object != b.Object {
			return a.Object < b.Object
		}
		return a.Message < b.Message
	})
	if err := writeGyre(dir, tenantObjs, o); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, "README.md"), readme(rep, o)); err != nil {
		return nil, err
	}
	return rep, nil
}

func baseDir(t string) string { return path.Join(render.TenantsDir, t, "base") }

// check writes the tenant's base and renders it as gyre will, at the
// Tenant's level. An object the render refuses moves to left-out/ with
// the render's reasons, and the base is written and rendered again,
// until it renders: what refers to a refused object is refused in turn.
func check(ctx context.Context, dir string, t *tenant) error {
	target := render.TargetsForTenant(&gyrev1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: t.name}, Spec: t.spec})[0]
	for {
		if err := writeBase(dir, t); err != nil {
			return err
		}
		res, err := render.Render(ctx, dir, target, render.Options{})
		if err != nil {
			return fmt.Errorf("tenant %s: render %s: %w", t.name, baseDir(t.name), err)
		}
		if len(res.Errors) == 0 {
			for _, w := range res.Warnings {
				t.note(w.Kind+"/"+w.Name, ToDo, "gyre warns: %s", fieldMessage(w))
			}
			return nil
		}
		refused := map[string]bool{}
		for _, e := range res.Errors {
			id := e.Kind + "/" + e.Name
			if e.Kind == "" || indexOf(t.objects, id) < 0 {
				t.note("", ToDo, "gyre's render refuses %s: %s", baseDir(t.name), e.Error())
				continue
			}
			if !refused[id] {
				refused[id] = true
				obj := t.objects[indexOf(t.objects, id)]
				t.note(id, LeftOut, "moved to %s: fix it there and move it back to %s", kindFile(path.Join(LeftOutDir, t.name), obj.GetKind()), baseDir(t.name))
			}
			t.note(id, LeftOut, "gyre's render refuses it: %s", fieldMessage(e))
		}
		if len(refused) == 0 {
			return nil
		}
		var keep []*unstructured.Unstructured
		for _, o := range t.objects {
			if refused[objectID(o)] {
				t.leftOut = append(t.leftOut, o)
			} else {
				keep = append(keep, o)
			}
		}
		t.objects = keep
	}
}

func fieldMessage(e render.Error) string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

func indexOf(objs []*unstructured.Unstructured, id string) int {
	for i, o := range objs {
		if objectID(o) == id {
			return i
		}
	}
	return -1
}

// writeBase writes tenants/<t>/base afresh: a file per kind and the
// kustomization that lists them.
func writeBase(dir string, t *tenant) error {
	base := filepath.Join(dir, filepath.FromSlash(baseDir(t.name)))
	if err := os.RemoveAll(base); err != nil {
		return err
	}
	if err := writeKinds(base, t.objects); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")
	files := kindFiles(t.objects)
	if len(files) == 0 {
		b.WriteString("resources: []\n")
	} else {
		b.WriteString("resources:\n")
	}
	for _, f := range files {
		fmt.Fprintf(&b, "- %s\n", f)
	}
	return writeFile(filepath.Join(base, "kustomization.yaml"), b.String())
}

// kindFiles names the files of the kinds among objs, in reference order.
func kindFiles(objs []*unstructured.Unstructured) []string {
	var files []string
	for _, k := range cycloneKinds {
		for _, o := range objs {
			if o.GetKind() == k.kind {
				files = append(files, kindFile("", k.kind))
				break
			}
		}
	}
	return files
}

func kindFile(dir, kind string) string { return path.Join(dir, strings.ToLower(kind)+".yaml") }

// writeKinds writes objs to dir, one file per kind, sorted by name.
func writeKinds(dir string, objs []*unstructured.Unstructured) error {
	for _, k := range cycloneKinds {
		var of []*unstructured.Unstructured
		for _, o := range objs {
			if o.GetKind() == k.kind {
				of = append(of, o)
			}
		}
		if len(of) == 0 {
			continue
		}
		render.Sort(of)
		var b bytes.Buffer
		if err := render.WriteYAML(&b, of); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, kindFile("", k.kind)), b.String()); err != nil {
			return err
		}
	}
	return nil
}

func countKinds(objs []*unstructured.Unstructured) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.GetKind()]++
	}
	return m
}

// byHandFile is where an object applied by hand goes.
func byHandFile(obj *unstructured.Unstructured) string {
	return path.Join(ByHandDir, obj.GetNamespace(), strings.ToLower(obj.GetKind())+"-"+obj.GetName()+".yaml")
}

// writeByHand writes the tenant's Secrets and ConfigMaps to apply by
// hand: each Secret as a placeholder, or, with age recipients, whole and
// encrypted to them (file name + ".age", ASCII-armored).
func writeByHand(dir string, t *tenant, recipients []age.Recipient) ([]string, error) {
	var files []string
	for _, obj := range t.byHand {
		file := byHandFile(obj)
		var b bytes.Buffer
		secret := obj.GetKind() == "Secret"
		switch {
		case secret && len(recipients) > 0 && t.secrets[file] != nil:
			if err := encrypt(&b, t.secrets[file], recipients); err != nil {
				return nil, fmt.Errorf("tenant %s: encrypt Secret %s/%s: %w", t.name, obj.GetNamespace(), obj.GetName(), err)
			}
			file += ".age"
		case secret:
			fmt.Fprintf(&b, "# Secret %s of Cyclone tenant %s, without its values.\n# Replace every %s, then apply it by hand once Tenant %s is Ready:\n#   kubectl apply -f %s\n# Never commit it filled in.\n",
				obj.GetName(), t.name, FillMe, t.name, file)
			fallthrough
		default:
			if err := render.WriteYAML(&b, []*unstructured.Unstructured{obj}); err != nil {
				return nil, err
			}
		}
		if err := writeFile(filepath.Join(dir, filepath.FromSlash(file)), b.String()); err != nil {
			return nil, err
		}
		files = append(files, file)
	}
	sort.Strings(files)
	return files, nil
}

// encrypt writes obj as YAML encrypted to recipients: `age -d -i KEY
// FILE | kubectl apply -f -` applies it.
func encrypt(w io.Writer, obj *unstructured.Unstructured, recipients []age.Recipient) error {
	var plain bytes.Buffer
	if err := render.WriteYAML(&plain, []*unstructured.Unstructured{obj}); err != nil {
		return err
	}
	aw := armor.NewWriter(w)
	ew, err := age.Encrypt(aw, recipients...)
	if err != nil {
		return err
	}
	if _, err := ew.Write(plain.Bytes()); err != nil {
		return err
	}
	if err := ew.Close(); err != nil {
		return err
	}
	return aw.Close()
}

// writeGyre writes the Repository and the Tenants, and a kustomization
// for `kubectl apply -k gyre`.
func writeGyre(dir string, tenants []*unstructured.Unstructured, o Options) error {
	url := o.RepoURL
	if url == "" {
		url = RepoURLPlaceholder
	}
	repo, err := toUnstructured(&gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{Name: o.Repository},
		Spec:       gyrev1alpha1.RepositorySpec{URL: url, Ref: &gyrev1alpha1.GitRef{Branch: "main"}},
	}, "Repository")
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if o.RepoURL == "" {
		fmt.Fprintf(&b, "# Set spec.url to the Git repository you push this directory to.\n")
	}
	if err := render.WriteYAML(&b, []*unstructured.Unstructured{repo}); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, GyreDir, "repository.yaml"), b.String()); err != nil {
		return err
	}
	b.Reset()
	if err := render.WriteYAML(&b, tenants); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, GyreDir, "tenants.yaml"), b.String()); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, GyreDir, "kustomization.yaml"),
		"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- repository.yaml\n- tenants.yaml\n")
}

// toUnstructured turns a gyre object into what is written: no status, no
// empty creation time.
func toUnstructured(obj runtime.Object, kind string) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(gyrev1alpha1.GroupVersion.String())
	u.SetKind(kind)
	delete(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}

func writeFile(file, content string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, []byte(content), 0o644)
}
