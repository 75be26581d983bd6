package web

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/runlogs"
)

var update = flag.Bool("update", false, "write the screenshots of docs/ from the browser tests")

// eval runs a JavaScript expression in the tab and returns its value.
func eval[T any](g Gomega, tab context.Context, expr string, opts ...chromedp.EvaluateOption) T {
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr, opts...))
	g.Expect(err).NotTo(HaveOccurred(), expr)
	return v
}

// open loads url in the tab and returns the HTTP status of the page.
func open(g Gomega, tab context.Context, url string) int64 {
	res, err := chromedp.Run(tab, chromedp.NavigateResponse(url))
	g.Expect(err).NotTo(HaveOccurred(), url)
	return res.Status
}

// login signs in at url's login page with token, as a person pastes it.
func login(g Gomega, tab context.Context, url, token string) {
	g.Expect(open(g, tab, url+"/login")).To(BeEquivalentTo(200))
	_, err := chromedp.Run(tab, chromedp.SendKeys(chromedp.CSS("#token"), token))
	g.Expect(err).NotTo(HaveOccurred())
	res, err := chromedp.RunResponse(tab, chromedp.Click(chromedp.CSS("form button")))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Status).To(BeEquivalentTo(200), "signed in, the runs page")
}

// pipeline is the stages of the runs the tests show: a build, a test and
// a lint after it, a deploy after both.
func pipeline() []stage {
	return []stage{
		{name: "build", phase: cyclonev1alpha1.StatusSucceeded, took: 94 * time.Second, pod: "gone-build-1",
			outputs: []cyclonev1alpha1.KeyValue{{Key: "image", Value: "registry.example/shop:3f2a9c1"}}},
		{name: "unit-test", depends: []string{"build"}, phase: cyclonev1alpha1.StatusSucceeded, took: 3*time.Minute + 7*time.Second, pod: "gone-unit-test-1"},
		{name: "lint", depends: []string{"build"}, phase: cyclonev1alpha1.StatusFailed, took: 12 * time.Second, pod: "gone-lint-1"},
		{name: "deploy", depends: []string{"unit-test", "lint"}, phase: cyclonev1alpha1.StatusCancelled},
	}
}

func TestBrowser_runPageDrawsTheDAGAndShowsStoredLogs(t *testing.T) {
	tab := browser(t)
	g := NewWithT(t)
	ns := tenantNamespace(t, g, "shop")
	run := createRun(g, ns, "shop-ci-7", "shop-ci", cyclonev1alpha1.StatusFailed, pipeline()...)
	store := &runlogs.Dir{Root: t.TempDir()}
	for stage, log := range map[string]string{
		"build":     "go build ./...\nok   shop/cmd/shop 0.9s\n",
		"unit-test": "=== RUN   TestCheckout\n--- PASS: TestCheckout (0.02s)\nPASS\n",
		"lint":      "cart.go:42:2: ineffectual assignment to total (ineffassign)\n",
	} {
		g.Expect(store.Write(ctx, runlogs.Key{Namespace: ns, Run: run.Name, Stage: stage, Attempt: 1, Container: "main"}, strings.NewReader(log))).To(Succeed())
	}
	url := serve(t, Options{TrustLocal: true, Logs: store})

	g.Expect(open(g, tab, url+"/runs/"+ns+"/"+run.Name)).To(BeEquivalentTo(200))
	nodes := eval[[]string](g, tab, `[...document.querySelectorAll("#dag g.node")].map(n => n.dataset.stage + " " + n.getAttribute("class"))`)
	g.Expect(nodes).To(Equal([]string{
		"build node phase-succeeded",
		"lint node phase-failed",
		"unit-test node phase-succeeded",
		"deploy node phase-cancelled",
	}), "a node per stage, colored by its phase")
	edges := eval[[]string](g, tab, `[...document.querySelectorAll("#dag path.edge")].map(e => e.dataset.from + ">" + e.dataset.to)`)
	g.Expect(edges).To(Equal([]string{"build>lint", "build>unit-test", "lint>deploy", "unit-test>deploy"}))
	g.Expect(eval[string](g, tab, `document.querySelector('#dag g[data-stage="unit-test"] .timing').textContent`)).
		To(Equal("Succeeded · 3m07s"), "a stage's timing")
	g.Expect(eval[string](g, tab, `getComputedStyle(document.querySelector('#dag g[data-stage="lint"] rect')).stroke`)).
		To(Equal("rgb(211, 58, 44)"), "the stylesheet colors a failed stage red")
	g.Expect(eval[string](g, tab, `document.querySelector("#stage-build .outputs").textContent`)).
		To(ContainSubstring("registry.example/shop:3f2a9c1"), "the stage's outputs")
	g.Expect(eval[string](g, tab, `document.querySelector("#parameters").textContent`)).To(ContainSubstring("-trimpath"))

	g.Eventually(func(g Gomega) {
		g.Expect(eval[string](g, tab, `document.querySelector("#stage-lint pre.log").dataset.state`)).To(Equal("done"))
	}).Should(Succeed())
	g.Expect(eval[string](g, tab, `document.querySelector("#stage-lint pre.log").textContent`)).
		To(Equal("cart.go:42:2: ineffectual assignment to total (ineffassign)\n"), "the log kept after the Pod was removed")
	g.Expect(eval[string](g, tab, `document.querySelector("#stage-lint pre.log").dataset.source`)).To(Equal("stored"))
	g.Eventually(func(g Gomega) {
		g.Expect(eval[string](g, tab, `document.querySelector("#stage-deploy pre.log").textContent`)).To(Equal("(no log kept)"))
	}).Should(Succeed())
	screenshot(t, tab, "web-run.png")
}

func TestBrowser_runningStageLogAppearsLive(t *testing.T) {
	tab := browser(t)
	g := NewWithT(t)
	ns := tenantNamespace(t, g, "live")
	kl := startKubelet(t, g)
	run := createRun(g, ns, "shop-ci-8", "shop-ci", cyclonev1alpha1.StatusRunning,
		stage{name: "build", phase: cyclonev1alpha1.StatusRunning, took: 20 * time.Second, pod: "shop-ci-8-build-1"},
		stage{name: "package", depends: []string{"build"}, phase: cyclonev1alpha1.StatusPending})
	stagePod(g, run, "build", "shop-ci-8-build-1", kl.node)
	url := serve(t, Options{TrustLocal: true, Logs: &runlogs.Dir{Root: t.TempDir()}})

	kl.send("shop-ci-8-build-1", "step 1/2: compiling")
	g.Expect(open(g, tab, url+"/runs/"+ns+"/"+run.Name)).To(BeEquivalentTo(200))
	build := `document.querySelector("#stage-build pre.log")`
	g.Eventually(func(g Gomega) {
		g.Expect(eval[string](g, tab, build+".textContent")).To(Equal("step 1/2: compiling\n"))
	}).Should(Succeed(), "the first line shows while the stage runs")
	g.Expect(eval[string](g, tab, build+".dataset.state")).To(Equal("streaming"))
	g.Expect(eval[string](g, tab, build+".dataset.source")).To(Equal("live"))

	kl.send("shop-ci-8-build-1", "step 2/2: linking")
	g.Eventually(func(g Gomega) {
		g.Expect(eval[string](g, tab, build+".textContent")).To(Equal("step 1/2: compiling\nstep 2/2: linking\n"))
	}).Should(Succeed(), "a line the Pod writes later appears without a reload")
	kl.end("shop-ci-8-build-1")
	g.Eventually(func(g Gomega) {
		g.Expect(eval[string](g, tab, build+".dataset.state")).To(Equal("done"))
	}).Should(Succeed(), "the log ends with the container")

	// The next stage starts after the page loaded: its log appears too.
	pkg := `document.querySelector("#stage-package pre.log")`
	g.Eventually(func(g Gomega) {
		g.Expect(eval[string](g, tab, pkg+".textContent")).To(Equal("(no log yet)"))
	}).Should(Succeed(), "a stage that has not started has no log yet")
	stagePod(g, run, "package", "shop-ci-8-package-1", kl.node)
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(run), run)).To(Succeed())
	run.Status.Stages["package"].Status = cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusRunning, StartTime: &metav1.Time{Time: testNow}}
	run.Status.Stages["package"].Pod = &cyclonev1alpha1.PodInfo{Namespace: ns, Name: "shop-ci-8-package-1"}
	g.Expect(k8s.Status().Update(ctx, run)).To(Succeed())
	kl.send("shop-ci-8-package-1", "packing shop.tar.gz")
	g.Eventually(func(g Gomega) {
		g.Expect(eval[string](g, tab, pkg+".textContent")).To(Equal("packing shop.tar.gz\n"))
	}).WithTimeout(20*time.Second).Should(Succeed(), "the page asks again for the log of a stage that had none")
	g.Eventually(func(g Gomega) {
		g.Expect(eval[string](g, tab, `document.querySelector('#dag g[data-stage="package"]').getAttribute("class")`)).To(Equal("node phase-running"))
	}).WithTimeout(20*time.Second).Should(Succeed(), "the DAG follows the run's status without a reload")
	kl.end("shop-ci-8-package-1")
}

func TestBrowser_runsFilterNarrowsTheTable(t *testing.T) {
	tab := browser(t)
	g := NewWithT(t)
	shopTenant, payTenant := "store", "payments"
	shop, pay := tenantNamespace(t, g, shopTenant), tenantNamespace(t, g, payTenant)
	createRun(g, shop, "store-ci-1", "store-ci", cyclonev1alpha1.StatusSucceeded, pipeline()[:1]...)
	createRun(g, shop, "store-ci-2", "store-ci", cyclonev1alpha1.StatusFailed, pipeline()...)
	createRun(g, shop, "store-release-1", "store-release", cyclonev1alpha1.StatusRunning,
		stage{name: "build", phase: cyclonev1alpha1.StatusRunning, took: 40 * time.Second})
	createRun(g, pay, "payments-ci-1", "payments-ci", cyclonev1alpha1.StatusSucceeded, pipeline()[:1]...)
	url := serve(t, Options{TrustLocal: true})

	rows := `[...document.querySelectorAll("#runs tbody tr[data-run]")].map(r => r.dataset.run)`
	ours := func(all []string) []string {
		var out []string
		for _, r := range all {
			if strings.HasPrefix(r, shop+"/") || strings.HasPrefix(r, pay+"/") {
				out = append(out, r)
			}
		}
		return out
	}
	g.Expect(open(g, tab, url+"/runs")).To(BeEquivalentTo(200))
	g.Expect(ours(eval[[]string](g, tab, rows))).To(ConsistOf(shop+"/store-ci-1", shop+"/store-ci-2", shop+"/store-release-1", pay+"/payments-ci-1"))
	g.Expect(eval[[]string](g, tab, `[...document.querySelectorAll("select[name=tenant] option")].map(o => o.value)`)).
		To(ContainElements(shopTenant, payTenant), "the tenant filter offers the tenants of the runs")

	_, err := chromedp.Run(tab, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector("select[name=tenant]").value = %q; true`, shopTenant)))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = chromedp.RunResponse(tab, chromedp.Click(chromedp.CSS("#filter button")))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(eval[string](g, tab, `location.search`)).To(Equal("?tenant=" + shopTenant + "&workflow=&phase="))
	g.Expect(eval[[]string](g, tab, rows)).To(ConsistOf(shop+"/store-ci-1", shop+"/store-ci-2", shop+"/store-release-1"), "only the tenant's runs")
	screenshot(t, tab, "web-runs.png")

	_, err = chromedp.Run(tab, chromedp.Evaluate[bool](`document.querySelector("select[name=phase]").value = "Failed"; true`))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = chromedp.RunResponse(tab, chromedp.Click(chromedp.CSS("#filter button")))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(eval[[]string](g, tab, rows)).To(Equal([]string{shop + "/store-ci-2"}), "only the tenant's failed run")
	g.Expect(eval[string](g, tab, `document.querySelector("select[name=tenant]").value`)).To(Equal(shopTenant), "the form keeps the filter")

	g.Expect(open(g, tab, url+"/runs?workflow=store-release")).To(BeEquivalentTo(200))
	g.Expect(eval[[]string](g, tab, rows)).To(Equal([]string{shop + "/store-release-1"}), "a workflow's runs")
}

func TestBrowser_showsAUserOnlyTheRunsTheyMayGet(t *testing.T) {
	tab := browser(t)
	g := NewWithT(t)
	mine, theirs := tenantNamespace(t, g, "team-a"), tenantNamespace(t, g, "team-b")
	createRun(g, mine, "ci-1", "ci", cyclonev1alpha1.StatusSucceeded, pipeline()[:1]...)
	secret := createRun(g, theirs, "ci-1", "ci", cyclonev1alpha1.StatusSucceeded, pipeline()[:1]...)
	store := &runlogs.Dir{Root: t.TempDir()}
	g.Expect(store.Write(ctx, runlogs.Key{Namespace: theirs, Run: secret.Name, Stage: "build", Attempt: 1, Container: "main"},
		strings.NewReader("password=hunter2\n"))).To(Succeed())
	token := serviceAccountToken(g, mine, "dev")
	url := serve(t, Options{Logs: store})

	g.Expect(open(g, tab, url+"/runs")).To(BeEquivalentTo(401), "no token, no runs")
	g.Expect(eval[string](g, tab, `document.body.textContent`)).To(And(ContainSubstring("kubectl proxy"), ContainSubstring("port-forward")),
		"the page says how to reach the view with a token")

	_, err := chromedp.Run(tab, chromedp.SendKeys(chromedp.CSS("#token"), "not-a-token"))
	g.Expect(err).NotTo(HaveOccurred())
	res, err := chromedp.RunResponse(tab, chromedp.Click(chromedp.CSS("form button")))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Status).To(BeEquivalentTo(401))
	g.Expect(eval[string](g, tab, `document.querySelector(".problem").textContent`)).To(Equal("The API server does not accept this token."))

	_, err = chromedp.Run(tab, chromedp.SendKeys(chromedp.CSS("#token"), token))
	g.Expect(err).NotTo(HaveOccurred())
	res, err = chromedp.RunResponse(tab, chromedp.Click(chromedp.CSS("form button")))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Status).To(BeEquivalentTo(200), "signed in, the runs page")
	runs := eval[[]string](g, tab, `[...document.querySelectorAll("#runs tbody tr[data-run]")].map(r => r.dataset.run)`)
	g.Expect(runs).To(ContainElement(mine + "/ci-1"))
	g.Expect(runs).NotTo(ContainElement(theirs+"/ci-1"), "no run of a namespace the user may not read")
	g.Expect(eval[string](g, tab, `document.querySelector("header .user").textContent`)).To(Equal("system:serviceaccount:" + mine + ":dev"))

	g.Expect(open(g, tab, url+"/runs/"+mine+"/ci-1")).To(BeEquivalentTo(200))
	g.Expect(open(g, tab, url+"/runs/"+theirs+"/ci-1")).To(BeEquivalentTo(403), "the run page of another namespace")
	g.Expect(eval[string](g, tab, `document.body.textContent`)).NotTo(ContainSubstring("hunter2"))
	g.Expect(eval[int64](g, tab, `fetch("/runs/`+theirs+`/ci-1/logs/build").then(r => r.status)`, chromedp.EvalAwaitPromise)).To(BeEquivalentTo(403),
		"nor its log")
}
