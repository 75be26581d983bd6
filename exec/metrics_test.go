package exec

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/metricstest"
)

// tenantKey is the Series key of labels spelled "a=x,b=y" plus the
// tenant's.
func tenantKey(labels, tenant string) string {
	pairs := []string{"tenant", tenant}
	for _, l := range strings.Split(labels, ",") {
		name, value, _ := strings.Cut(l, "=")
		pairs = append(pairs, name, value)
	}
	return metricstest.Key(pairs...)
}

// series returns a metric's series of one tenant, as a scrape shows them.
func series(g Gomega, name, tenant string) map[string]float64 {
	got, err := metricstest.Series(name, map[string]string{"tenant": tenant})
	g.Expect(err).NotTo(HaveOccurred())
	return got
}

func TestEngine_metrics(t *testing.T) {
	requireCluster(t)
	startEngine(t, env.Config, testConfig())
	for _, tc := range []struct {
		name   string
		stages func(ns string) []*cyclonev1alpha1.Stage
		phase  cyclonev1alpha1.StatusPhase
		// want maps metric names to their series, keyed by their labels
		// but tenant ("a=x,b=y"), to counter values and histogram sample
		// counts.
		want map[string]map[string]float64
	}{
		{
			name: "A run of two stages in a row counts one start, one Succeeded end, both stages' durations and both Pods' creation delays.",
			stages: func(ns string) []*cyclonev1alpha1.Stage {
				return []*cyclonev1alpha1.Stage{stage(ns, "build", succeed("0s")), stage(ns, "test", succeed("0s"))}
			},
			phase: cyclonev1alpha1.StatusSucceeded,
			want: map[string]map[string]float64{
				"gyre_runs_started_total":               {"workflow=wf": 1},
				"gyre_runs_finished_total":              {"phase=Succeeded,workflow=wf": 1},
				"gyre_run_duration_seconds":             {"workflow=wf": 1},
				"gyre_stage_pod_creation_delay_seconds": {"workflow=wf": 2},
				"gyre_stage_duration_seconds": {
					"phase=Succeeded,stage=build,workflow=wf": 1,
					"phase=Succeeded,stage=test,workflow=wf":  1,
				},
			},
		},
		{
			name: "A run whose first stage fails counts a Failed end and that stage's duration; the stage it kept from running has none.",
			stages: func(ns string) []*cyclonev1alpha1.Stage {
				return []*cyclonev1alpha1.Stage{stage(ns, "build", fail("0s")), stage(ns, "test", succeed("0s"))}
			},
			phase: cyclonev1alpha1.StatusFailed,
			want: map[string]map[string]float64{
				"gyre_runs_started_total":               {"workflow=wf": 1},
				"gyre_runs_finished_total":              {"phase=Failed,workflow=wf": 1},
				"gyre_run_duration_seconds":             {"workflow=wf": 1},
				"gyre_stage_pod_creation_delay_seconds": {"workflow=wf": 1},
				"gyre_stage_duration_seconds":           {"phase=Failed,stage=build,workflow=wf": 1},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newTenant(t)
			tenant := Tenant(ns)
			createWorkflow(t, ns, "wf", tc.stages(ns), items("build", "test:build"))
			createRun(t, ns, "run1", "wf")
			waitRun(t, ns, "run1", tc.phase)
			// The engine counts a transition once its write returns, which
			// may be after the test sees the write.
			for name, want := range tc.want {
				withTenant := map[string]float64{}
				for labels, v := range want {
					withTenant[tenantKey(labels, tenant)] = v
				}
				g.Eventually(func(g Gomega) map[string]float64 { return series(g, name, tenant) }).WithTimeout(10*time.Second).Should(Equal(withTenant), name)
			}
		})
	}
}

func TestEngine_metricsCountARunOnceAcrossRestarts(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	tenant := Tenant(ns)
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "build", succeed("0s"))}, items("build"))
	_, stop := startEngine(t, env.Config, testConfig())
	createRun(t, ns, "run1", "wf")
	waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	stop()

	// A new engine reconciles every run when it starts, run1 too; run2
	// finishing after that shows it has.
	startEngine(t, env.Config, testConfig())
	createRun(t, ns, "run2", "wf")
	waitRun(t, ns, "run2", cyclonev1alpha1.StatusSucceeded)
	g.Eventually(func(g Gomega) {
		g.Expect(series(g, "gyre_runs_finished_total", tenant)).To(Equal(map[string]float64{
			metricstest.Key("phase", "Succeeded", "tenant", tenant, "workflow", "wf"): 2,
		}))
	}).WithTimeout(5 * time.Second).Should(Succeed())
	g.Expect(series(g, "gyre_runs_started_total", tenant)).To(Equal(map[string]float64{
		metricstest.Key("tenant", tenant, "workflow", "wf"): 2,
	}))
}

func TestEngine_metricsOfARunThatNeverStarted(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	cfg := testConfig()
	cfg.MissingGracePeriod = 500 * time.Millisecond
	startEngine(t, env.Config, cfg)
	ns := newTenant(t)
	tenant := Tenant(ns)
	createRun(t, ns, "run1", "no-such-workflow")
	g.Eventually(func(g Gomega) {
		g.Expect(getRun(g, ns, "run1").Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusFailed))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// Whoever may create runs writes any name in spec.workflowRef: a
	// label of it would make a series of every name. The count follows
	// the status write the test has just seen.
	g.Eventually(func(g Gomega) {
		g.Expect(series(g, "gyre_runs_finished_total", tenant)).To(Equal(map[string]float64{
			tenantKey("phase=Failed,workflow=", tenant): 1,
		}))
	}).WithTimeout(5 * time.Second).Should(Succeed())
	g.Expect(series(g, "gyre_runs_started_total", tenant)).To(BeEmpty())
	g.Expect(series(g, "gyre_run_duration_seconds", tenant)).To(BeEmpty(), "a run that never started has no duration")
}
