package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// TestRunPage_golden renders a run page, whose SVG and order are the
// product, and compares it with testdata/run.golden.html; -update writes
// it. Rendering twice gives the same bytes.
func TestRunPage_golden(t *testing.T) {
	g := NewWithT(t)
	s, err := New(nil, nil, nil, Options{TrustLocal: true, Clock: clocktesting.NewFakePassiveClock(testNow)})
	g.Expect(err).NotTo(HaveOccurred())
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: testNow.Add(-d)} }
	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: "cyclone-shop", Name: "shop-ci-7"},
		Spec: cyclonev1alpha1.WorkflowRunSpec{
			WorkflowRef: &corev1.ObjectReference{Name: "shop-ci"},
			StageParams: []cyclonev1alpha1.ParameterConfig{{Name: "build", Parameters: []cyclonev1alpha1.ParameterItem{{Name: "GOFLAGS", Value: ptr.To("-trimpath")}}}},
		},
		Status: cyclonev1alpha1.WorkflowRunStatus{
			Overall: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusRunning, StartTime: at(5 * time.Minute)},
			Stages: map[string]*cyclonev1alpha1.StageStatus{
				"build": {Status: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusSucceeded, StartTime: at(5 * time.Minute), CompletionTime: at(3 * time.Minute)},
					Outputs: []cyclonev1alpha1.KeyValue{{Key: "image", Value: "registry.example/shop:3f2a9c1"}}},
				"test": {Depends: []string{"build"}, Attempt: 2,
					Status: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusRunning, StartTime: at(70 * time.Second)}},
				"deploy": {Depends: []string{"test"}, Status: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusPending}},
			},
			GlobalVariables: []cyclonev1alpha1.GlobalVariable{{Name: "BUILD_ID", Value: "x7k2p"}},
		},
	}
	render := func() string {
		rec := httptest.NewRecorder()
		s.renderFor(rec, httptest.NewRequest(http.MethodGet, "/runs/cyclone-shop/shop-ci-7", nil), http.StatusOK, "run.html", &viewer{s: s}, s.runView(run))
		return rec.Body.String()
	}
	got := render()
	g.Expect(render()).To(Equal(got), "rendering twice gives the same bytes")
	golden := filepath.Join("testdata", "run.golden.html")
	if *update {
		g.Expect(os.MkdirAll("testdata", 0o755)).To(Succeed())
		g.Expect(os.WriteFile(golden, []byte(got), 0o644)).To(Succeed())
	}
	want, err := os.ReadFile(golden)
	g.Expect(err).NotTo(HaveOccurred(), "go test ./web -run TestRunPage_golden -update writes it")
	g.Expect(got).To(Equal(string(want)))
}

// TestRuns_capsTheRows lists more runs than a page shows. The runs come
// from controller-runtime's fake client: what is tested is the page's
// cap, not the API server.
func TestRuns_capsTheRows(t *testing.T) {
	g := NewWithT(t)
	scheme := runtime.NewScheme()
	g.Expect(cyclonev1alpha1.AddToScheme(scheme)).To(Succeed())
	var objs []client.Object
	for i := range maxRuns + 2 {
		objs = append(objs, &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{
			Namespace: "cyclone-shop", Name: fmt.Sprintf("ci-%04d", i),
			CreationTimestamp: metav1.NewTime(testNow.Add(time.Duration(i) * time.Second)),
		}})
	}
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	s, err := New(reader, reader, nil, Options{TrustLocal: true, Clock: clocktesting.NewFakePassiveClock(testNow)})
	g.Expect(err).NotTo(HaveOccurred())
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/runs", nil))
	g.Expect(rec.Code).To(Equal(http.StatusOK))
	body := rec.Body.String()
	g.Expect(strings.Count(body, "<tr data-run=")).To(Equal(maxRuns))
	g.Expect(body).To(ContainSubstring(fmt.Sprintf("The newest %d of %d runs are shown", maxRuns, maxRuns+2)))
	g.Expect(body).To(ContainSubstring(`data-run="cyclone-shop/ci-0501"`), "the newest run is shown")
	g.Expect(body).NotTo(ContainSubstring(`data-run="cyclone-shop/ci-0001"`), "the oldest are left out")
}
