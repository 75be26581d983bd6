package trigger

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPlanCron(t *testing.T) {
	hourly := "0 * * * *"
	base := mustTime("2026-11-23T09:00:00Z")
	h := func(n float64) time.Time { return base.Add(time.Duration(n * float64(time.Hour))) }
	tests := []struct {
		name       string
		cron       cyclonev1alpha1.CronTrigger
		since, now time.Time
		// upSince is when the controller started; now when zero, as
		// after an outage.
		upSince    time.Time
		wantFire   []time.Time
		wantMissed bool
		wantLedger time.Time
		wantNext   time.Time
	}{
		{
			name:       "Nothing is due before the first scheduled time",
			cron:       cyclonev1alpha1.CronTrigger{Schedule: hourly},
			since:      base,
			now:        h(0.5),
			wantNext:   h(1),
			wantLedger: time.Time{},
		},
		{
			name:       "A time seen on time fires under every policy",
			cron:       cyclonev1alpha1.CronTrigger{Schedule: hourly, CatchUp: cyclonev1alpha1.CatchUpNone},
			since:      base,
			now:        h(1).Add(2 * time.Second),
			wantFire:   []time.Time{h(1)},
			wantLedger: h(1),
			wantNext:   h(2),
		},
		{
			name:       "None skips every time missed in a three-hour outage",
			cron:       cyclonev1alpha1.CronTrigger{Schedule: hourly, CatchUp: cyclonev1alpha1.CatchUpNone},
			since:      base,
			now:        h(3.5),
			wantMissed: true,
			wantLedger: h(3),
			wantNext:   h(4),
		},
		{
			name:       "None fires a time the controller was up for, however late it gets to it",
			cron:       cyclonev1alpha1.CronTrigger{Schedule: hourly, CatchUp: cyclonev1alpha1.CatchUpNone},
			since:      base,
			upSince:    base,
			now:        h(1).Add(5 * time.Minute),
			wantFire:   []time.Time{h(1)},
			wantLedger: h(1),
			wantNext:   h(2),
		},
		{
			name:       "Latest, the default, fires only the latest missed time",
			cron:       cyclonev1alpha1.CronTrigger{Schedule: hourly},
			since:      base,
			now:        h(3.5),
			wantFire:   []time.Time{h(3)},
			wantMissed: true,
			wantLedger: h(3),
			wantNext:   h(4),
		},
		{
			name:       "All fires every missed time, oldest first",
			cron:       cyclonev1alpha1.CronTrigger{Schedule: hourly, CatchUp: cyclonev1alpha1.CatchUpAll},
			since:      base,
			now:        h(3.5),
			wantFire:   []time.Time{h(1), h(2), h(3)},
			wantLedger: h(3),
			wantNext:   h(4),
		},
		{
			name:       "All stops at maxCatchUp and keeps the latest times",
			cron:       cyclonev1alpha1.CronTrigger{Schedule: hourly, CatchUp: cyclonev1alpha1.CatchUpAll, MaxCatchUp: ptr.To[int32](2)},
			since:      base,
			now:        h(3.5),
			wantFire:   []time.Time{h(2), h(3)},
			wantMissed: true,
			wantLedger: h(3),
			wantNext:   h(4),
		},
		{
			name:       "The starting deadline drops times too late to start",
			cron:       cyclonev1alpha1.CronTrigger{Schedule: hourly, CatchUp: cyclonev1alpha1.CatchUpAll, StartingDeadlineSeconds: ptr.To[int64](5400)},
			since:      base,
			now:        h(3.5),
			wantFire:   []time.Time{h(2), h(3)},
			wantMissed: true,
			wantLedger: h(3),
			wantNext:   h(4),
		},
		{
			name:       "A month-long outage of a per-minute schedule keeps only the cap",
			cron:       cyclonev1alpha1.CronTrigger{Schedule: "* * * * *", CatchUp: cyclonev1alpha1.CatchUpAll, MaxCatchUp: ptr.To[int32](3)},
			since:      base,
			now:        h(24 * 30),
			wantFire:   []time.Time{h(24 * 30).Add(-2 * time.Minute), h(24 * 30).Add(-time.Minute), h(24 * 30)},
			wantMissed: true,
			wantLedger: h(24 * 30),
			wantNext:   h(24 * 30).Add(time.Minute),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s, err := convention.ParseSchedule(tt.cron)
			g.Expect(err).NotTo(HaveOccurred())
			upSince := tt.upSince
			if upSince.IsZero() {
				upSince = tt.now
			}
			p := planCron(s, tt.cron, tt.since, tt.now, upSince)
			g.Expect(p.fire).To(Equal(tt.wantFire))
			g.Expect(p.missed).To(Equal(tt.wantMissed))
			g.Expect(p.ledger).To(Equal(tt.wantLedger))
			g.Expect(p.next).To(Equal(tt.wantNext))
		})
	}
}

func TestCronRunName(t *testing.T) {
	at := mustTime("2026-11-23T09:00:00Z")
	tests := []struct {
		name    string
		trigger string
		at      time.Time
		want    string
	}{
		{name: "A short trigger name is kept whole with the Unix minute", trigger: "nightly", at: at, want: "nightly-29923740"},
		{name: "A time off the minute uses Unix seconds", trigger: "fast", at: at.Add(30 * time.Second), want: "fast-1795424430"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(cronRunName(tt.trigger, tt.at)).To(Equal(tt.want))
		})
	}
	t.Run("A long trigger name is shortened with a hash that tells long names apart", func(t *testing.T) {
		g := NewWithT(t)
		long := strings.Repeat("a", 70)
		a, b := cronRunName(long+"-x", at), cronRunName(long+"-y", at)
		g.Expect(len(a)).To(BeNumerically("<=", convention.MaxNameLength))
		g.Expect(a).To(HaveSuffix("-29923740"))
		g.Expect(a).NotTo(Equal(b))
		g.Expect(cronRunName(long+"-x", at)).To(Equal(a))
	})
}
