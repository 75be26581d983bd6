package mgrconfig

import (
	"testing"

	. "github.com/onsi/gomega"
)

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
