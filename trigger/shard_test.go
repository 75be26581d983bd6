package trigger

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

// shardTenant creates a Tenant labelled for shard, its namespace, and an
// hourly cron trigger in it; it returns the namespace.
func shardTenant(t *testing.T, shard string) string {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	tn := &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "shard-", Labels: map[string]string{convention.ShardLabel: shard}},
		Spec:       gyrev1alpha1.TenantSpec{RepositoryRef: gyrev1alpha1.ObjectReference{Name: "none"}},
	}
	g.Expect(k8sClient.Create(ctx, tn)).To(Succeed())
	testcluster.DeleteAtCleanup(t, k8sClient, tn)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: convention.Namespace(tn.Name)}}
	g.Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	testcluster.DeleteAtCleanup(t, k8sClient, ns)
	trig := &cyclonev1alpha1.WorkflowTrigger{
		ObjectMeta: metav1.ObjectMeta{Name: "hourly", Namespace: ns.Name},
		Spec: cyclonev1alpha1.WorkflowTriggerSpec{
			Type:            cyclonev1alpha1.TriggerTypeCron,
			Cron:            cyclonev1alpha1.CronTrigger{Schedule: "0 * * * *", CatchUp: cyclonev1alpha1.CatchUpLatest},
			WorkflowRunSpec: cyclonev1alpha1.WorkflowRunSpec{WorkflowRef: &corev1.ObjectReference{Name: "build"}},
		},
	}
	g.Expect(k8sClient.Create(ctx, trig)).To(Succeed())
	return ns.Name
}

func TestCronReconciler_firesOnlyTheTriggersOfItsShard(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	ours, theirs := shardTenant(t, "b"), shardTenant(t, "a")
	// An hour after the triggers were made: each has a time to fire.
	clk := clocktesting.NewFakeClock(time.Now().Add(time.Hour))

	// The cron controller of `gyre controller --shard b`, with its cache.
	opts := mgrconfig.Options{MetricsAddr: "0", ProbeAddr: "0", Shard: "b"}.Manager(scheme)
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(restCfg, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect((&CronReconciler{Shard: "b", Clock: clk}).SetupWithManager(mgr)).To(Succeed())
	testcluster.StartManager(t, mgr)

	g.Eventually(func(g Gomega) {
		g.Expect(listRuns(g, ours)).To(HaveLen(1), "shard b fires its Tenant's trigger")
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(listRuns(g, theirs)).To(BeEmpty(), "shard b leaves shard a's trigger alone")
	g.Expect(getTrigger(g, theirs, "hourly").Status.Count).To(BeZero(), "nor writes its status")

	// The Tenant moves to shard b: its trigger fires there, though the
	// trigger itself did not change.
	tn := &gyrev1alpha1.Tenant{}
	name, _ := convention.TenantOf(theirs)
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, tn)).To(Succeed())
	moved := client.MergeFrom(tn.DeepCopy())
	tn.Labels[convention.ShardLabel] = "b"
	g.Expect(k8sClient.Patch(ctx, tn, moved)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(listRuns(g, theirs)).To(HaveLen(1), "the moved Tenant's trigger fires in shard b")
	}).WithTimeout(30 * time.Second).Should(Succeed())
}
