package exec

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/notify"
	"github.com/gyreops/gyre/exec/notify/notifytest"
)

// delegationService is an external service that receives delegation
// requests; react says what it does with each.
type delegationService struct {
	*httptest.Server
	notifytest.Inbox[notify.DelegationRequest]
}

func newDelegationService(t *testing.T, react func(w http.ResponseWriter, req notify.DelegationRequest)) *delegationService {
	d := &delegationService{}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req notify.DelegationRequest
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d.Add(req)
		react(w, req)
	}))
	t.Cleanup(d.Close)
	return d
}

// reportStage is what a delegation service does when its work ends: set
// the stage's phase (and outputs) through the API, on the run it read.
func reportStage(ns, run, stage string, phase cyclonev1alpha1.StatusPhase, outputs ...cyclonev1alpha1.KeyValue) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		r := &cyclonev1alpha1.WorkflowRun{}
		if err := k8s.Get(bg, key(ns, run), r); err != nil {
			return err
		}
		ss := r.Status.Stages[stage]
		if ss == nil {
			return fmt.Errorf("no stage %s", stage)
		}
		now := metav1.Now()
		ss.Status.Phase, ss.Status.Reason, ss.Status.LastTransitionTime = phase, "ReportedByService", &now
		ss.Outputs = outputs
		return k8s.Status().Update(bg, r)
	})
}

// delegationWorkflow is build → approve (delegated to url) → deploy.
func delegationWorkflow(t *testing.T, ns, url string, approve cyclonev1alpha1.StageItem) {
	delegated := &cyclonev1alpha1.Stage{
		ObjectMeta: metav1.ObjectMeta{Name: "approve", Namespace: ns},
		Spec: cyclonev1alpha1.StageSpec{Delegation: &cyclonev1alpha1.DelegationWorkload{
			Type: "approval", URL: url, Config: `{"approvers":["ops"]}`}},
	}
	approve.Name, approve.Depends = "approve", []string{"build"}
	createWorkflow(t, ns, "release", []*cyclonev1alpha1.Stage{stage(ns, "build", succeed("")), delegated, stage(ns, "deploy", succeed(""))},
		[]cyclonev1alpha1.StageItem{{Name: "build"}, approve, {Name: "deploy", Depends: []string{"approve"}}})
}

func TestEngine_delegationStage(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	svc := newDelegationService(t, func(w http.ResponseWriter, req notify.DelegationRequest) {
		w.WriteHeader(http.StatusAccepted)
		// The service does its work after answering, and reports.
		go func() {
			_ = reportStage(req.WorkflowRun.Namespace, req.WorkflowRun.Name, req.Stage.Name,
				cyclonev1alpha1.StatusSucceeded, cyclonev1alpha1.KeyValue{Key: "approvedBy", Value: "ops"})
		}()
	})
	startEngine(t, env.Config, allowLoopback(testConfig()))
	delegationWorkflow(t, ns, svc.URL, cyclonev1alpha1.StageItem{})
	createRun(t, ns, "run1", "release", func(run *cyclonev1alpha1.WorkflowRun) {
		run.Spec.GlobalVariables = []cyclonev1alpha1.GlobalVariable{{Name: "TAG", Value: "$(random:5)"}}
	})

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	g.Expect(phaseOf(run)).To(HaveEach(cyclonev1alpha1.StatusSucceeded))
	g.Expect(run.Status.Stages["approve"].Outputs).To(Equal([]cyclonev1alpha1.KeyValue{{Key: "approvedBy", Value: "ops"}}))
	g.Expect(run.Status.Stages["approve"].Pod).To(BeNil(), "a delegated stage has no Pod")
	g.Expect(run.Status.Stages["deploy"].Status.StartTime.Time).NotTo(BeTemporally("<", run.Status.Stages["approve"].Status.LastTransitionTime.Time),
		"deploy waited for the service's report")

	reqs := svc.All()
	g.Expect(reqs).To(HaveLen(1), "one request per attempt")
	req := reqs[0]
	g.Expect(req.Stage.Name).To(Equal("approve"))
	g.Expect(req.Stage.Kind).To(Equal("Stage"))
	g.Expect(req.Stage.Spec.Delegation.Config).To(Equal(`{"approvers":["ops"]}`))
	g.Expect(req.Workflow.Name).To(Equal("release"))
	g.Expect(req.WorkflowRun.Name).To(Equal("run1"))
	g.Expect(req.WorkflowRun.Status.Stages["approve"].Attempt).To(Equal(int32(1)))
	g.Expect(req.WorkflowRun.Status.Stages["build"].Status.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
	g.Expect(req.WorkflowRun.Spec.GlobalVariables).To(ConsistOf(And(HaveField("Name", "TAG"), HaveField("Value", MatchRegexp(`^[a-z0-9]{5}$`)))),
		"the service reads the generated value where Cyclone writes it")
}

func TestEngine_delegationRefusedIsRetriedThenFails(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	svc := newDelegationService(t, func(w http.ResponseWriter, _ notify.DelegationRequest) {
		http.Error(w, "approval service is read-only", http.StatusServiceUnavailable)
	})
	startEngine(t, env.Config, allowLoopback(testConfig()))
	delegationWorkflow(t, ns, svc.URL, cyclonev1alpha1.StageItem{Retries: 1})
	createRun(t, ns, "run1", "release")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusFailed)
	approve := run.Status.Stages["approve"].Status
	g.Expect(approve.Phase).To(Equal(cyclonev1alpha1.StatusFailed))
	g.Expect(approve.Reason).To(Equal(ReasonDelegationFailure))
	g.Expect(approve.Message).To(ContainSubstring("delegation request: HTTP 503"))
	g.Expect(approve.Message).NotTo(ContainSubstring("read-only"), "the service's answer stays out of the status")
	g.Expect(stagePhase(run, "deploy")).To(Equal(cyclonev1alpha1.StatusCancelled))
	reqs := svc.All()
	g.Expect(reqs).To(HaveLen(2), "the retry is a new attempt, with a request of its own")
	g.Expect(reqs[1].WorkflowRun.Status.Stages["approve"].Attempt).To(Equal(int32(2)))
}

func TestEngine_delegationStageTimeout(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	svc := newDelegationService(t, func(w http.ResponseWriter, _ notify.DelegationRequest) {
		w.WriteHeader(http.StatusOK) // and never reports
	})
	startEngine(t, env.Config, allowLoopback(testConfig()))
	delegationWorkflow(t, ns, svc.URL, cyclonev1alpha1.StageItem{Timeout: "1s"})
	createRun(t, ns, "run1", "release")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusFailed)
	approve := run.Status.Stages["approve"].Status
	g.Expect(approve.Reason).To(Equal(ReasonTimeout))
	g.Expect(approve.Message).To(ContainSubstring("exceeded the stage timeout of 1s"))
	g.Expect(svc.All()).To(HaveLen(1))
}

// TestEngine_delegationNeverSentTwice stops the engine's reconcile right
// after it recorded the attempt and before it sent the request, as a
// crash would: the request is not sent by a later reconcile either, and
// the stage waits for the service (or a person) to report.
func TestEngine_delegationNeverSentTwice(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	svc := newDelegationService(t, func(w http.ResponseWriter, _ notify.DelegationRequest) { w.WriteHeader(http.StatusOK) })
	var killed atomic.Bool
	startEngineWith(t, allowLoopback(testConfig()), func(point string) error {
		if point != "after-status-write" || killed.Load() {
			return nil
		}
		run := &cyclonev1alpha1.WorkflowRun{}
		if err := k8s.Get(bg, key(ns, "run1"), run); err != nil {
			return nil
		}
		if ss := run.Status.Stages["approve"]; ss != nil && ss.Status.Reason == ReasonDelegating {
			killed.Store(true)
			return errKilled
		}
		return nil
	})
	delegationWorkflow(t, ns, svc.URL, cyclonev1alpha1.StageItem{})
	createRun(t, ns, "run1", "release")

	g.Eventually(func(g Gomega) {
		ss := getRun(g, ns, "run1").Status.Stages["approve"]
		g.Expect(ss).NotTo(BeNil())
		g.Expect(ss.Status.Phase).To(Equal(cyclonev1alpha1.StatusWaiting))
		g.Expect(ss.Status.Reason).To(Equal(ReasonDelegationUnconfirmed))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(killed.Load()).To(BeTrue())
	g.Expect(svc.All()).To(BeEmpty(), "an attempt whose sending was interrupted is not sent again")

	g.Expect(reportStage(ns, "run1", "approve", cyclonev1alpha1.StatusSucceeded)).To(Succeed())
	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	g.Expect(phaseOf(run)).To(HaveEach(cyclonev1alpha1.StatusSucceeded))
}

func TestEngine_delegationToLoopbackIsRefused(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	svc := newDelegationService(t, func(w http.ResponseWriter, _ notify.DelegationRequest) { w.WriteHeader(http.StatusOK) })
	startEngine(t, env.Config, testConfig())
	delegationWorkflow(t, ns, "http://user:s3cret@"+strings.TrimPrefix(svc.URL, "http://")+"/approve?token=s3cret", cyclonev1alpha1.StageItem{})
	createRun(t, ns, "run1", "release")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusFailed)
	approve := run.Status.Stages["approve"].Status
	g.Expect(approve.Reason).To(Equal(ReasonDelegationFailure))
	g.Expect(approve.Message).To(Equal("delegation request: refused: 127.0.0.1 is a loopback address"))
	g.Expect(svc.All()).To(BeEmpty(), "the service is never called")
	raw, err := json.Marshal(run.Status)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(raw)).NotTo(ContainSubstring("s3cret"), "credentials in the URL stay out of the status")
}

// TestEngine_delegationHoldsNoWorker: a delegation service that does not
// answer keeps its stage delegating, and nothing else: with a single
// reconcile worker, another run still runs to the end meanwhile.
func TestEngine_delegationHoldsNoWorker(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	release := make(chan struct{})
	released := sync.OnceFunc(func() { close(release) })
	defer released()
	svc := newDelegationService(t, func(w http.ResponseWriter, _ notify.DelegationRequest) {
		<-release
		w.WriteHeader(http.StatusOK)
	})
	ns := newTenant(t)
	cfg := allowLoopback(testConfig())
	cfg.MaxConcurrentReconciles = 1
	cfg.HTTPClient = cfg.Outbound.Client(0) // no timeout but the request's own
	startEngine(t, env.Config, cfg)
	delegationWorkflow(t, ns, svc.URL, cyclonev1alpha1.StageItem{})
	createWorkflow(t, ns, "fast", []*cyclonev1alpha1.Stage{stage(ns, "b", succeed("0s"))}, items("b"))
	createRun(t, ns, "waiting", "release")
	g.Eventually(func() []notify.DelegationRequest { return svc.All() }).WithTimeout(time.Minute).Should(HaveLen(1))

	createRun(t, ns, "other", "fast")
	// The request's own timeout is 30 seconds: a worker held by it would
	// let the other run finish only after that.
	g.Eventually(func(g Gomega) {
		g.Expect(getRun(g, ns, "other").Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	g.Expect(stagePhase(getRun(g, ns, "waiting"), "approve")).To(Equal(cyclonev1alpha1.StatusRunning))

	released()
	g.Eventually(func(g Gomega) {
		ss := getRun(g, ns, "waiting").Status.Stages["approve"]
		g.Expect(ss.Status.Phase).To(Equal(cyclonev1alpha1.StatusWaiting))
		g.Expect(ss.Status.Reason).To(Equal(ReasonDelegationSucceed))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}
