package cycloneimport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"filippo.io/age/armor"
	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/render"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testEnv is the API server every test shares; each loads its own
// tenant.
var testEnv struct {
	Config *rest.Config
	Client client.Client
}

func TestMain(m *testing.M) {
	os.Exit(testcluster.RunSuite(m, testcluster.Options{}, func(c *testcluster.Cluster) error {
		testEnv.Config = c.Config
		var err error
		testEnv.Client, err = client.New(c.Config, client.Options{})
		return err
	}))
}

// The values of the fixture's Secrets: none may reach a written file.
var secretValues = []string{"glpat-s3cr3t-token-value", "sqa-s3cr3t-sonar", "cm9ib3Q6czNjcjN0LXB1bGw="}

func TestImport(t *testing.T) {
	testcluster.Require(t)
	ctx := context.Background()
	live := loadCycloneTenant(t, testEnv.Client, "shop")

	t.Run("The repository written is the golden one, every Secret a placeholder, and gyre renders the live specs back from it.", func(t *testing.T) {
		g := NewWithT(t)
		dir := filepath.Join(t.TempDir(), "repo")
		var progress bytes.Buffer
		rep, err := Import(ctx, testEnv.Config, dir, Options{Tenants: []string{"shop"}, Runs: true, RepoURL: "https://git.example.com/platform/pipelines.git", Progress: &progress})
		g.Expect(err).NotTo(HaveOccurred())
		tree := readTree(t, dir)
		golden(t, "shop.golden", tree)
		for _, v := range secretValues {
			g.Expect(tree).NotTo(ContainSubstring(v), "a Secret value was written")
		}
		g.Expect(progress.String()).To(ContainSubstring("Reading tenant shop (1 of 1) from namespace cyclone-shop\n"))
		g.Expect(progress.String()).To(MatchRegexp(`(?m)^  Stages +3$`))
		g.Expect(rep.Tenants).To(ConsistOf(HaveField("LeftOut", Equal(map[string]int{"Stage": 1, "WorkflowRun": 1}))))

		rendered := renderImported(t, dir, "shop")
		want := map[string]*unstructured.Unstructured{}
		for id, o := range live {
			// The Stage is privileged, the run names a cluster the Tenant
			// does not have: both are left out.
			if o.GroupVersionKind().Group == "cyclone.dev" && id != "Stage/node-debug" && id != "WorkflowRun/shop-api-ci-eu-1" {
				want[id] = o
			}
		}
		g.Expect(rendered).To(HaveLen(len(want)), "every Cyclone object but the refused Stage renders")
		for _, o := range rendered {
			id := objectID(o)
			orig := want[id]
			g.Expect(orig).NotTo(BeNil(), "%s was not in the cluster", id)
			wantSpec := orig.DeepCopy().Object["spec"]
			if id == "WorkflowTrigger/shop-api-nightly" {
				// Cyclone ran stages in the tenant namespace; gyre in its
				// worker namespace.
				g.Expect(unstructured.SetNestedField(wantSpec.(map[string]any), "cyclone-shop-worker", "executionContext", "namespace")).To(Succeed())
				unstructured.RemoveNestedField(wantSpec.(map[string]any), "executionContext", "cluster")
			}
			g.Expect(o.Object["spec"]).To(Equal(wantSpec), "%s: the spec gyre renders is the live one", id)
			g.Expect(o.GetLabels()).To(HaveKeyWithValue(convention.TenantLabel, "shop"))
			for k, v := range orig.GetLabels() {
				if k != "workflowrun.cyclone.dev/notification-sent" {
					g.Expect(o.GetLabels()).To(HaveKeyWithValue(k, v), "%s keeps its labels", id)
				}
			}
		}
	})

	t.Run("Without --runs, WorkflowRuns are left out and counted.", func(t *testing.T) {
		g := NewWithT(t)
		dir := t.TempDir()
		rep, err := Import(ctx, testEnv.Config, dir, Options{Tenants: []string{"shop"}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(filepath.Join(dir, "tenants", "shop", "base", "workflowrun.yaml")).NotTo(BeAnExistingFile())
		g.Expect(rep.Notes).To(ContainElement(Note{Tenant: "shop", Action: LeftOut,
			Message: "2 WorkflowRuns are run history, not desired state, and not imported (--runs imports them, and gyre then starts each once more)"}))
		g.Expect(renderImported(t, dir, "shop")).NotTo(ContainElement(HaveField("Object", HaveKeyWithValue("kind", "WorkflowRun"))))
	})

	t.Run("A user who may not read Secrets or the namespace gets placeholders from the references and notes saying so.", func(t *testing.T) {
		g := NewWithT(t)
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "cyclone-reader", Namespace: "cyclone-shop"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"cyclone.dev"}, Resources: []string{"*"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}},
		}}
		binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "cyclone-reader", Namespace: "cyclone-shop"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "cyclone-reader"}}}
		for _, o := range []client.Object{role, binding} {
			g.Expect(testEnv.Client.Create(ctx, o)).To(Succeed())
		}
		cfg := rest.CopyConfig(testEnv.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: "cyclone-reader"}
		dir := t.TempDir()
		var rep *Report
		var out string
		g.Eventually(func(g Gomega) {
			var err error
			out = filepath.Join(dir, fmt.Sprint(time.Now().UnixNano()))
			rep, err = Import(ctx, cfg, out, Options{Tenants: []string{"shop"}})
			g.Expect(err).NotTo(HaveOccurred())
		}).WithTimeout(30*time.Second).Should(Succeed(), "the API server knows the binding")
		placeholder, err := os.ReadFile(filepath.Join(out, "by-hand", "cyclone-shop", "secret-shop-gitlab.yaml"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(placeholder)).To(ContainSubstring("stringData:\n  integration: FILL-ME\n  webhookSecret: FILL-ME\n"))
		g.Expect(rep.Tenants[0].Objects).To(HaveKeyWithValue("Stage", 2))
		g.Expect(rep.Notes).To(ContainElements(
			Note{Tenant: "shop", Action: ToDo, Message: "namespace cyclone-shop could not be read (forbidden): the Tenant gets gyre's defaults, not Cyclone's quota and PVC"},
			Note{Tenant: "shop", Object: "Secret/shop-gitlab", Action: ToDo, Message: "could not be read (forbidden): its placeholder has only the keys the references name, and no encrypted copy is made"},
			Note{Tenant: "shop", Action: ToDo, Message: "Secrets in cyclone-shop could not be listed (forbidden): Cyclone integrations no object refers to were not looked for"},
			HaveField("Message", MatchRegexp(`^\d+ kinds could not be listed in cyclone-shop \(forbidden\), so what else it holds is unknown: `)),
		))
	})

	t.Run("Several tenants are imported in name order, once each, with a Tenant each that renders.", func(t *testing.T) {
		g := NewWithT(t)
		loadCycloneTenant(t, testEnv.Client, "payments")
		dir := t.TempDir()
		var progress bytes.Buffer
		rep, err := Import(ctx, testEnv.Config, dir, Options{Tenants: []string{"shop", "payments", "shop"}, Progress: &progress})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(rep.Tenants).To(HaveExactElements(HaveField("Tenant", "payments"), HaveField("Tenant", "shop")))
		g.Expect(progress.String()).To(ContainSubstring("Reading tenant payments (1 of 2) from namespace cyclone-payments\n"))
		g.Expect(progress.String()).To(ContainSubstring("Reading tenant shop (2 of 2) from namespace cyclone-shop\n"))
		for _, tenant := range []string{"payments", "shop"} {
			g.Expect(renderImported(t, dir, tenant)).To(HaveLen(8), "tenant %s renders", tenant)
		}
	})

	t.Run("Importing twice writes the same bytes.", func(t *testing.T) {
		g := NewWithT(t)
		a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
		_, err := Import(ctx, testEnv.Config, a, Options{Tenants: []string{"shop"}, Runs: true})
		g.Expect(err).NotTo(HaveOccurred())
		_, err = Import(ctx, testEnv.Config, b, Options{Tenants: []string{"shop"}, Runs: true})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(readTree(t, b)).To(Equal(readTree(t, a)))
	})

	t.Run("With age recipients, an age key and an SSH key, each referenced Secret is encrypted whole and decrypts to the live Secret with either.", func(t *testing.T) {
		g := NewWithT(t)
		id, err := age.GenerateX25519Identity()
		g.Expect(err).NotTo(HaveOccurred())
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		g.Expect(err).NotTo(HaveOccurred())
		sshPub, err := ssh.NewPublicKey(pub)
		g.Expect(err).NotTo(HaveOccurred())
		sshID, err := agessh.NewEd25519Identity(priv)
		g.Expect(err).NotTo(HaveOccurred())
		var recipients []age.Recipient
		for _, r := range []string{id.Recipient().String(), string(ssh.MarshalAuthorizedKey(sshPub))} {
			rec, err := ParseRecipient(r)
			g.Expect(err).NotTo(HaveOccurred())
			recipients = append(recipients, rec)
		}
		dir := t.TempDir()
		rep, err := Import(ctx, testEnv.Config, dir, Options{Tenants: []string{"shop"}, AgeRecipients: recipients})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(rep.Tenants[0].ByHand).To(Equal([]string{
			"by-hand/cyclone-shop-worker/configmap-build-settings.yaml",
			"by-hand/cyclone-shop-worker/secret-registry-pull.yaml.age",
			"by-hand/cyclone-shop/secret-shop-gitlab.yaml.age",
		}))
		tree := readTree(t, dir)
		for _, v := range secretValues {
			g.Expect(tree).NotTo(ContainSubstring(v), "a Secret value was written in clear")
		}
		for _, identity := range []age.Identity{id, sshID} {
			f, err := os.Open(filepath.Join(dir, "by-hand", "cyclone-shop", "secret-shop-gitlab.yaml.age"))
			g.Expect(err).NotTo(HaveOccurred())
			r, err := age.Decrypt(armor.NewReader(f), identity)
			g.Expect(err).NotTo(HaveOccurred())
			plain, err := io.ReadAll(r)
			g.Expect(err).NotTo(HaveOccurred())
			f.Close()
			var secret unstructured.Unstructured
			g.Expect(yaml.Unmarshal(bytes.TrimPrefix(plain, []byte("---\n")), &secret.Object)).To(Succeed())
			g.Expect(secret.GetNamespace()).To(Equal("cyclone-shop"))
			g.Expect(secret.Object["data"]).To(Equal(live["Secret/shop-gitlab"].Object["data"]))
			g.Expect(secret.GetUID()).To(BeEmpty())
		}
	})
}

func TestImport_errorsNameWhatIsWrong(t *testing.T) {
	testcluster.Require(t)
	full := t.TempDir()
	g := NewWithT(t)
	g.Expect(os.WriteFile(filepath.Join(full, "go.mod"), nil, 0o644)).To(Succeed())
	for _, tc := range []struct {
		name, dir, want string
		tenants         []string
		repoURL         string
	}{
		{"A tenant without a namespace is an error naming the namespace.", t.TempDir(), "tenant nobody: namespace cyclone-nobody not found: Cyclone keeps tenant nobody's objects there", []string{"nobody"}, ""},
		{"A directory with files in it is refused.", full, full + " is not empty: import writes a new repository; give it an empty or new directory", []string{"shop"}, ""},
		{"A tenant name gyre cannot take is refused.", t.TempDir(), `tenant "ops-worker": not a gyre tenant name (a DNS label of at most 48 characters, not ending in -worker)`, []string{"ops-worker"}, ""},
		{"No tenant at all is refused.", t.TempDir(), "no tenant to import: name one or more with --tenant", nil, ""},
		{"A repository URL the Repository would refuse is refused.", t.TempDir(), `repository URL "git.example.com/pipelines": want https://, http://, ssh:// or user@host:path, as a Repository's spec.url`, []string{"shop"}, "git.example.com/pipelines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Import(context.Background(), testEnv.Config, tc.dir, Options{Tenants: tc.tenants, RepoURL: tc.repoURL})
			g.Expect(err).To(MatchError(tc.want))
		})
	}
}

// renderImported renders tenant's target of the imported repository at
// dir as gyre's controller would, with the Tenant the import wrote, and
// returns its objects; it fails the test when the target does not render.
func renderImported(t *testing.T, dir, tenant string) []*unstructured.Unstructured {
	t.Helper()
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join(dir, "gyre", "tenants.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var found *gyrev1alpha1.Tenant
	for _, doc := range strings.Split(string(b), "---\n") {
		var tn gyrev1alpha1.Tenant
		g.Expect(yaml.Unmarshal([]byte(doc), &tn)).To(Succeed())
		if tn.Name == tenant {
			found = &tn
		}
	}
	g.Expect(found).NotTo(BeNil(), "gyre/tenants.yaml has Tenant %s", tenant)
	targets := render.TargetsForTenant(found)
	g.Expect(targets).To(HaveLen(1))
	res, err := render.Render(context.Background(), dir, targets[0], render.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Errors).To(BeEmpty())
	return res.Objects
}

// readTree returns every file under dir, in path order, each after a
// line naming it.
func readTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b.WriteString("=== " + filepath.ToSlash(rel) + "\n")
		b.Write(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/cycloneimport -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("the repository written differs from %s (go test ./internal/cycloneimport -update rewrites it); got:\n%s", path, got)
	}
}

// loadCycloneTenant creates testdata/cyclone-tenant.yaml as Cyclone
// tenant name, then gives it what Cyclone's controllers would: the run
// owned by its Workflow, and a status. It returns the objects as the API
// server then serves them, server-set fields and all, by Kind/name.
func loadCycloneTenant(t *testing.T, c client.Client, name string) map[string]*unstructured.Unstructured {
	t.Helper()
	ctx := context.Background()
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join("testdata", "cyclone-tenant.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(strings.ReplaceAll(string(b), "TENANT", name)), 4096)
	var objs []*unstructured.Unstructured
	for {
		o := &unstructured.Unstructured{}
		err := dec.Decode(&o.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		g.Expect(err).NotTo(HaveOccurred())
		if len(o.Object) == 0 {
			continue
		}
		g.Expect(c.Create(ctx, o)).To(Succeed(), "create %s", objectID(o))
		objs = append(objs, o)
	}
	ns := "cyclone-" + name
	wf := &unstructured.Unstructured{}
	wf.SetAPIVersion("cyclone.dev/v1alpha1")
	wf.SetKind("Workflow")
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-api-ci"}, wf)).To(Succeed())
	for _, o := range objs {
		if o.GetName() != "shop-api-ci-manual-1" {
			continue
		}
		o.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "cyclone.dev/v1alpha1", Kind: "Workflow", Name: wf.GetName(), UID: wf.GetUID()}})
		g.Expect(c.Update(ctx, o)).To(Succeed())
		o.Object["status"] = map[string]any{"overall": map[string]any{"phase": "Succeeded", "message": "all stages succeeded"}, "cleaned": true}
		g.Expect(c.Status().Update(ctx, o)).To(Succeed())
	}
	live := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(o), got)).To(Succeed())
		live[objectID(got)] = got
	}
	g.Expect(live["WorkflowRun/shop-api-ci-manual-1"].GetResourceVersion()).NotTo(BeEmpty())
	return live
}
