package render

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestRender_limits(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		want   string
	}{
		{
			name:   "A target with more objects than maxObjects renders nothing.",
			limits: Limits{MaxObjects: 2},
			want:   "the target renders 3 objects, more than spec.limits.maxObjects (2)",
		},
		{
			name:   "A target larger than maxRenderBytes renders nothing.",
			limits: Limits{MaxBytes: 200},
			want:   "spec.limits.maxRenderBytes (200)",
		},
		{
			name:   "A target whose render outlives renderTimeout renders nothing.",
			limits: Limits{Timeout: time.Nanosecond},
			want:   "the render took longer than spec.limits.renderTimeout (1ns)",
		},
		{
			name:   "A target within its limits renders.",
			limits: Limits{MaxObjects: 3, MaxBytes: 4096, Timeout: time.Minute},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := NewRenderer()
			res, err := r.Render(context.Background(), "testdata/limits", Target{Tenant: "t", Cluster: DefaultCluster}, Options{Limits: tt.limits})
			g.Expect(err).NotTo(HaveOccurred())
			if tt.want == "" {
				g.Expect(res.Errors).To(BeEmpty())
				g.Expect(res.Objects).To(HaveLen(3))
				return
			}
			g.Expect(res.Errors).To(ConsistOf(HaveField("Message", ContainSubstring(tt.want))))
			g.Expect(res.Objects).To(BeEmpty(), "no partial output")
			g.Expect(res.Digest).To(BeEmpty())
		})
	}
}

func TestRender_timeoutStopsTheBuildAtItsNextRead(t *testing.T) {
	g := NewWithT(t)
	fsys, err := newConfinedFS("testdata/limits", 0, false)
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	fsys.done = ctx.Done()
	_, err = fsys.ReadFile(fsys.root + "/tenants/t/base/a.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	cancel()
	_, err = fsys.ReadFile(fsys.root + "/tenants/t/base/a.yaml")
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
	_, err = fsys.ReadDir(fsys.root + "/tenants/t/base")
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
}

func TestRender_cancelledWhileRenderingIsAnError(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewRenderer().Render(ctx, "testdata/limits", Target{Tenant: "t", Cluster: DefaultCluster}, Options{})
	g.Expect(err).To(MatchError(context.Canceled))
}
