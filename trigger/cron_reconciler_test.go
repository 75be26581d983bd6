package trigger

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
)

// cronTest is one cron trigger under a fake clock.
type cronTest struct {
	ns, name string
	clock    *clocktesting.FakeClock
	events   *events.FakeRecorder
	// base is the first scheduled hour after the trigger was created.
	base time.Time
}

// newCronTest creates an hourly trigger in a namespace of its own, with
// the fake clock on the first hour after its creation.
func newCronTest(t *testing.T, mutate func(*cyclonev1alpha1.CronTrigger)) *cronTest {
	t.Helper()
	g := NewWithT(t)
	ns := newNamespace(t)
	cron := cyclonev1alpha1.CronTrigger{Schedule: "0 * * * *"}
	if mutate != nil {
		mutate(&cron)
	}
	trig := &cyclonev1alpha1.WorkflowTrigger{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns, Labels: map[string]string{
			"gyre.dev/tenant":          "demo",
			"project.cyclone.dev/name": "shop",
			"cyclone.dev/project":      "shop",
		}},
		Spec: cyclonev1alpha1.WorkflowTriggerSpec{
			Type:       cyclonev1alpha1.TriggerTypeCron,
			Cron:       cron,
			Parameters: []cyclonev1alpha1.ParameterItem{{Name: "IMAGE_TAG", Value: ptr.To("nightly")}},
			WorkflowRunSpec: cyclonev1alpha1.WorkflowRunSpec{
				WorkflowRef: &corev1.ObjectReference{Name: "build"},
				Timeout:     "1h",
			},
		},
	}
	g.Expect(k8sClient.Create(context.Background(), trig)).To(Succeed())
	base := trig.CreationTimestamp.Truncate(time.Hour).Add(time.Hour)
	return &cronTest{ns: ns, name: trig.Name, clock: clocktesting.NewFakeClock(base), events: events.NewFakeRecorder(100), base: base}
}

// reconciler is a fresh reconciler, as after a controller restart.
func (ct *cronTest) reconciler() *CronReconciler {
	return &CronReconciler{Client: k8sClient, APIReader: k8sClient, Recorder: ct.events, Clock: ct.clock}
}

func (ct *cronTest) reconcile(g Gomega) ctrl.Result {
	res, err := ct.reconciler().Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ct.ns, Name: ct.name}})
	g.Expect(err).NotTo(HaveOccurred())
	return res
}

// at is the scheduled hour n after base.
func (ct *cronTest) at(n int) time.Time { return ct.base.Add(time.Duration(n) * time.Hour) }

// runName is the name of the run of hour n.
func (ct *cronTest) runName(n int) string { return cronRunName(ct.name, ct.at(n)) }

// drainEvents returns the reasons of the events recorded so far.
func (ct *cronTest) drainEvents() []string {
	var reasons []string
	for {
		select {
		case e := <-ct.events.Events:
			reasons = append(reasons, strings.Fields(e)[1])
		default:
			return reasons
		}
	}
}

func setPhase(g Gomega, ns, name string, phase cyclonev1alpha1.StatusPhase) {
	run := &cyclonev1alpha1.WorkflowRun{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, run)).To(Succeed())
	run.Status.Overall.Phase = phase
	g.Expect(k8sClient.Status().Update(context.Background(), run)).To(Succeed())
}

func TestCronReconciler_firesOnceAtTheScheduledTime(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ct := newCronTest(t, nil)

	ct.clock.SetTime(ct.base.Add(-10 * time.Minute))
	res := ct.reconcile(g)
	g.Expect(res.RequeueAfter).To(Equal(10*time.Minute), "requeues at the next scheduled time")
	g.Expect(listRuns(g, ct.ns)).To(BeEmpty())
	g.Expect(getTrigger(g, ct.ns, ct.name).Status.NextScheduleTime.Time).To(BeTemporally("==", ct.base))

	ct.clock.SetTime(ct.base.Add(3 * time.Second))
	res = ct.reconcile(g)
	g.Expect(res.RequeueAfter).To(Equal(time.Hour - 3*time.Second))
	runs := listRuns(g, ct.ns)
	g.Expect(runs).To(HaveLen(1))
	run := runs[ct.runName(0)]
	g.Expect(run.Labels).To(HaveKeyWithValue(convention.LabelTrigger, ct.name))
	g.Expect(run.Labels).To(HaveKeyWithValue(convention.LabelTriggerType, "Cron"))
	g.Expect(run.Labels).To(HaveKeyWithValue("gyre.dev/tenant", "demo"))
	g.Expect(run.Labels).To(HaveKeyWithValue("project.cyclone.dev/name", "shop"), "Cyclone's project label, from the trigger")
	g.Expect(run.Labels).To(HaveKeyWithValue("workflow.cyclone.dev/name", "build"), "Cyclone's workflow label, from the workflowRef")
	g.Expect(run.Labels).NotTo(HaveKey("cyclone.dev/project"), "not a Cyclone label")
	g.Expect(run.Annotations).To(HaveKeyWithValue(convention.AnnotationScheduleTime, ct.base.UTC().Format(time.RFC3339)))
	g.Expect(run.Spec.WorkflowRef.Name).To(Equal("build"))
	g.Expect(run.Spec.GlobalVariables).To(ConsistOf(cyclonev1alpha1.GlobalVariable{Name: "IMAGE_TAG", Value: "nightly"}))
	g.Expect(run.Finalizers).To(ConsistOf(convention.RunFinalizer), "created with the engine's finalizer, which the engine then need not write")

	st := getTrigger(g, ct.ns, ct.name).Status
	g.Expect(st.Count).To(Equal(1))
	g.Expect(st.LastScheduleTime.Time).To(BeTemporally("==", ct.base))
	g.Expect(st.NextScheduleTime.Time).To(BeTemporally("==", ct.at(1)))
	g.Expect(st.LastFired.Name).To(Equal(ct.runName(0)))
	g.Expect(st.LastError).To(BeEmpty())
	g.Expect(ct.drainEvents()).To(Equal([]string{ReasonFired}))

	// A second look at the same time starts nothing and says nothing.
	ct.reconcile(g)
	g.Expect(listRuns(g, ct.ns)).To(HaveLen(1))
	g.Expect(getTrigger(g, ct.ns, ct.name).Status.Count).To(Equal(1))
	g.Expect(ct.drainEvents()).To(BeEmpty())
}

func TestCronReconciler_catchUpAfterAThreeHourOutage(t *testing.T) {
	testcluster.Require(t)
	tests := []struct {
		name       string
		cron       func(*cyclonev1alpha1.CronTrigger)
		downFor    time.Duration
		wantHours  []int
		wantEvents []string
	}{
		{
			name:       "None starts nothing for the missed hours",
			cron:       func(c *cyclonev1alpha1.CronTrigger) { c.CatchUp = cyclonev1alpha1.CatchUpNone },
			downFor:    3*time.Hour + 5*time.Minute,
			wantEvents: []string{ReasonMissed},
		},
		{
			name:       "None still starts the hour the controller comes back in",
			cron:       func(c *cyclonev1alpha1.CronTrigger) { c.CatchUp = cyclonev1alpha1.CatchUpNone },
			downFor:    3*time.Hour + 20*time.Second,
			wantHours:  []int{3},
			wantEvents: []string{ReasonMissed, ReasonFired},
		},
		{
			name:       "Latest starts the latest missed hour only",
			cron:       func(c *cyclonev1alpha1.CronTrigger) { c.CatchUp = cyclonev1alpha1.CatchUpLatest },
			downFor:    3*time.Hour + 5*time.Minute,
			wantHours:  []int{3},
			wantEvents: []string{ReasonMissed, ReasonFired},
		},
		{
			name:       "All starts every missed hour",
			cron:       func(c *cyclonev1alpha1.CronTrigger) { c.CatchUp = cyclonev1alpha1.CatchUpAll },
			downFor:    3*time.Hour + 5*time.Minute,
			wantHours:  []int{1, 2, 3},
			wantEvents: []string{ReasonFired, ReasonFired, ReasonFired},
		},
		{
			name: "All with a cap of two starts the two latest hours",
			cron: func(c *cyclonev1alpha1.CronTrigger) {
				c.CatchUp, c.MaxCatchUp = cyclonev1alpha1.CatchUpAll, ptr.To[int32](2)
			},
			downFor:    3*time.Hour + 5*time.Minute,
			wantHours:  []int{2, 3},
			wantEvents: []string{ReasonMissed, ReasonFired, ReasonFired},
		},
		{
			name: "All with a starting deadline of 90 minutes skips the hour too late to start",
			cron: func(c *cyclonev1alpha1.CronTrigger) {
				c.CatchUp, c.StartingDeadlineSeconds = cyclonev1alpha1.CatchUpAll, ptr.To[int64](90*60)
			},
			downFor:    3*time.Hour + 5*time.Minute,
			wantHours:  []int{2, 3},
			wantEvents: []string{ReasonMissed, ReasonFired, ReasonFired},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ct := newCronTest(t, tt.cron)
			ct.reconcile(g) // fires hour 0 and writes the ledger
			g.Expect(ct.drainEvents()).To(Equal([]string{ReasonFired}))

			// The controller is down for the outage; a new reconciler
			// knows only what the trigger's status says.
			ct.clock.Step(tt.downFor)
			ct.reconcile(g)

			want := []string{ct.runName(0)}
			for _, h := range tt.wantHours {
				want = append(want, ct.runName(h))
			}
			g.Expect(listRuns(g, ct.ns)).To(HaveLen(len(want)))
			for _, name := range want {
				g.Expect(listRuns(g, ct.ns)).To(HaveKey(name))
			}
			st := getTrigger(g, ct.ns, ct.name).Status
			g.Expect(st.Count).To(Equal(len(want)))
			g.Expect(st.LastScheduleTime.Time).To(BeTemporally("==", ct.at(3)), "every missed hour is dealt with")
			g.Expect(st.NextScheduleTime.Time).To(BeTemporally("==", ct.at(4)))
			g.Expect(ct.drainEvents()).To(Equal(tt.wantEvents))

			// Coming back once more starts nothing again.
			ct.reconcile(g)
			g.Expect(listRuns(g, ct.ns)).To(HaveLen(len(want)))
		})
	}
}

func TestCronReconciler_concurrencyPolicy(t *testing.T) {
	testcluster.Require(t)
	t.Run("Forbid skips an hour while the previous run is still going", func(t *testing.T) {
		g := NewWithT(t)
		ct := newCronTest(t, func(c *cyclonev1alpha1.CronTrigger) { c.ConcurrencyPolicy = cyclonev1alpha1.ConcurrencyForbid })
		ct.reconcile(g)
		setPhase(g, ct.ns, ct.runName(0), cyclonev1alpha1.StatusRunning)

		ct.clock.SetTime(ct.at(1))
		ct.reconcile(g)
		g.Expect(listRuns(g, ct.ns)).To(HaveLen(1))
		g.Expect(ct.drainEvents()).To(Equal([]string{ReasonFired, ReasonForbidden}))
		st := getTrigger(g, ct.ns, ct.name).Status
		g.Expect(st.LastScheduleTime.Time).To(BeTemporally("==", ct.at(1)), "the skipped hour is dealt with")
		g.Expect(st.Count).To(Equal(1))

		setPhase(g, ct.ns, ct.runName(0), cyclonev1alpha1.StatusSucceeded)
		ct.clock.SetTime(ct.at(2))
		ct.reconcile(g)
		g.Expect(listRuns(g, ct.ns)).To(HaveKey(ct.runName(2)))
		g.Expect(listRuns(g, ct.ns)).To(HaveLen(2))
	})

	t.Run("Replace stops the running run and starts the new one", func(t *testing.T) {
		g := NewWithT(t)
		ct := newCronTest(t, func(c *cyclonev1alpha1.CronTrigger) { c.ConcurrencyPolicy = cyclonev1alpha1.ConcurrencyReplace })
		ct.reconcile(g)
		setPhase(g, ct.ns, ct.runName(0), cyclonev1alpha1.StatusRunning)

		ct.clock.SetTime(ct.at(1))
		ct.reconcile(g)
		runs := listRuns(g, ct.ns)
		g.Expect(runs).To(HaveLen(2))
		g.Expect(runs[ct.runName(0)].Spec.Stop).To(BeTrue(), "the running run is cancelled")
		g.Expect(runs[ct.runName(1)].Spec.Stop).To(BeFalse())
		g.Expect(ct.drainEvents()).To(Equal([]string{ReasonFired, ReasonReplaced, ReasonFired}))
	})

	t.Run("Replace leaves finished runs alone", func(t *testing.T) {
		g := NewWithT(t)
		ct := newCronTest(t, func(c *cyclonev1alpha1.CronTrigger) { c.ConcurrencyPolicy = cyclonev1alpha1.ConcurrencyReplace })
		ct.reconcile(g)
		setPhase(g, ct.ns, ct.runName(0), cyclonev1alpha1.StatusFailed)

		ct.clock.SetTime(ct.at(1))
		ct.reconcile(g)
		g.Expect(listRuns(g, ct.ns)[ct.runName(0)].Spec.Stop).To(BeFalse())
		g.Expect(ct.drainEvents()).To(Equal([]string{ReasonFired, ReasonFired}))
	})

	t.Run("Allow starts the new run beside the running one", func(t *testing.T) {
		g := NewWithT(t)
		ct := newCronTest(t, nil)
		ct.reconcile(g)
		setPhase(g, ct.ns, ct.runName(0), cyclonev1alpha1.StatusRunning)

		ct.clock.SetTime(ct.at(1))
		ct.reconcile(g)
		runs := listRuns(g, ct.ns)
		g.Expect(runs).To(HaveLen(2))
		g.Expect(runs[ct.runName(0)].Spec.Stop).To(BeFalse())
	})
}

func TestCronReconciler_twoReplicasNeverDoubleFire(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ct := newCronTest(t, func(c *cyclonev1alpha1.CronTrigger) {
		c.Schedule, c.CatchUp, c.MaxCatchUp = "* * * * *", cyclonev1alpha1.CatchUpAll, ptr.To[int32](100)
	})
	// Start on the first minute after the trigger was created: it fires
	// that minute only.
	created := getTrigger(g, ct.ns, ct.name).CreationTimestamp.Time
	ct.clock.SetTime(created.Truncate(time.Minute).Add(time.Minute))
	var replicas []*CronReconciler
	for range 2 {
		c, err := newClient()
		g.Expect(err).NotTo(HaveOccurred())
		replicas = append(replicas, &CronReconciler{Client: c, APIReader: c, Clock: ct.clock})
	}
	req := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ct.ns, Name: ct.name}}

	// Each round moves the clock on by one to three minutes and lets both
	// replicas reconcile at once, a few times each, as conflicts requeue.
	want := 1
	for round := range 13 {
		if round == 0 {
			ct.reconcile(g)
			continue
		}
		minutes := round%3 + 1
		ct.clock.Step(time.Duration(minutes) * time.Minute)
		want += minutes
		var wg sync.WaitGroup
		errs := make([]error, len(replicas))
		for i, r := range replicas {
			wg.Go(func() {
				for range 3 {
					if _, err := r.Reconcile(context.Background(), req); err != nil {
						errs[i] = err
					}
				}
			})
		}
		wg.Wait()
		g.Expect(errors.Join(errs...)).NotTo(HaveOccurred())
	}
	g.Expect(listRuns(g, ct.ns)).To(HaveLen(want))
	st := getTrigger(g, ct.ns, ct.name).Status
	g.Expect(st.Count).To(Equal(want), "each run is counted once")
	g.Expect(st.LastScheduleTime.Time).To(BeTemporally("==", ct.clock.Now()))
}

func TestCronReconciler_disabledTriggerSkipsTheTimesItSleepsThrough(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ct := newCronTest(t, nil)
	trig := getTrigger(g, ct.ns, ct.name)
	trig.Spec.Disabled = true
	g.Expect(k8sClient.Update(context.Background(), trig)).To(Succeed())

	for h := range 3 {
		ct.clock.SetTime(ct.at(h))
		res := ct.reconcile(g)
		g.Expect(res.RequeueAfter).To(Equal(time.Hour), "a disabled trigger still moves its ledger every hour")
	}
	g.Expect(listRuns(g, ct.ns)).To(BeEmpty())
	st := getTrigger(g, ct.ns, ct.name).Status
	g.Expect(st.LastScheduleTime.Time).To(BeTemporally("==", ct.at(2)))
	g.Expect(st.NextScheduleTime).To(BeNil())

	ct.clock.SetTime(ct.at(2).Add(30 * time.Minute))
	trig = getTrigger(g, ct.ns, ct.name)
	trig.Spec.Disabled = false
	g.Expect(k8sClient.Update(context.Background(), trig)).To(Succeed())
	ct.reconcile(g)
	g.Expect(listRuns(g, ct.ns)).To(BeEmpty(), "enabling does not catch up the hours it was disabled for")

	ct.clock.SetTime(ct.at(3))
	ct.reconcile(g)
	g.Expect(listRuns(g, ct.ns)).To(HaveKey(ct.runName(3)))
}

func TestCronReconciler_invalidScheduleStalls(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ct := newCronTest(t, func(c *cyclonev1alpha1.CronTrigger) { c.Schedule = "61 * * * *" })
	_, err := ct.reconciler().Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ct.ns, Name: ct.name}})
	g.Expect(err).To(MatchError(reconcile.TerminalError(nil)))
	st := getTrigger(g, ct.ns, ct.name).Status
	g.Expect(st.LastError).To(ContainSubstring(`schedule "61 * * * *"`))
	g.Expect(st.NextScheduleTime).To(BeNil())
	g.Expect(ct.drainEvents()).To(Equal([]string{ReasonInvalidSchedule}))
}

func TestCronReconciler_setupWithManager(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ct := newCronTest(t, nil)
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserverOff,
		HealthProbeBindAddress: "0",
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect((&CronReconciler{Clock: ct.clock}).SetupWithManager(mgr)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()

	g.Eventually(func(g Gomega) {
		st := getTrigger(g, ct.ns, ct.name).Status
		g.Expect(st.Count).To(Equal(1))
		g.Expect(st.NextScheduleTime).NotTo(BeNil())
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(listRuns(g, ct.ns)).To(HaveKey(ct.runName(0)))
	cancel()
	g.Expect(<-done).To(Succeed())
}

// TestHA_cronTickFiresOnceAcrossAFailover: a leader killed while firing a
// tick and the replica that takes over may both fire it, the new leader
// without knowing the old one got that far. The run's name follows from
// the tick, so the tick starts one run.
func TestHA_cronTickFiresOnceAcrossAFailover(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ct := newCronTest(t, nil)
	ct.clock.SetTime(ct.base.Add(3 * time.Second))
	var wg sync.WaitGroup
	for range 4 {
		r := ct.reconciler()
		wg.Go(func() {
			_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ct.ns, Name: ct.name}})
			// A replica that loses the race on the trigger's status
			// retries; nothing else may fail.
			if err != nil && !apierrors.IsConflict(err) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	g.Expect(ct.reconcile(g).RequeueAfter).To(BeNumerically(">", 0))
	runs := listRuns(g, ct.ns)
	g.Expect(runs).To(HaveLen(1))
	g.Expect(runs).To(HaveKey(ct.runName(0)))
	g.Expect(getTrigger(g, ct.ns, ct.name).Status.LastFired.Name).To(Equal(ct.runName(0)))
}
