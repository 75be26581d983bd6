package mgrconfig

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestOptions_Manager_leaseTiming(t *testing.T) {
	tests := []struct {
		name                            string
		opts                            Options
		wantLease, wantRenew, wantRetry *time.Duration
	}{
		{name: "Unset timings leave controller-runtime's defaults of 15s, 10s and 2s.",
			opts: Options{LeaderElection: true}},
		{name: "Set timings reach the leader election, so that a killed leader is replaced sooner.",
			opts:      Options{LeaderElection: true, LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second},
			wantLease: ptr(4 * time.Second), wantRenew: ptr(3 * time.Second), wantRetry: ptr(time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got := tt.opts.Manager(runtime.NewScheme())
			g.Expect(got.LeaderElectionID).To(Equal("gyre-controller.gyre.dev"))
			g.Expect(got.LeaseDuration).To(Equal(tt.wantLease))
			g.Expect(got.RenewDeadline).To(Equal(tt.wantRenew))
			g.Expect(got.RetryPeriod).To(Equal(tt.wantRetry))
		})
	}
}

func ptr(d time.Duration) *time.Duration { return &d }

func TestOptions_eachShardElectsItsOwnLeader(t *testing.T) {
	tests := []struct {
		name, shard, wantLease string
	}{
		{name: "The replicas without a shard keep the lease gyre always had.", shard: "", wantLease: "gyre-controller.gyre.dev"},
		{name: "A shard's replicas elect among themselves on a lease named after it.", shard: "eu", wantLease: "gyre-controller-eu.gyre.dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			opts := Options{LeaderElection: true, Shard: tt.shard}.Manager(nil)
			g.Expect(opts.LeaderElectionID).To(Equal(tt.wantLease))
		})
	}
}
