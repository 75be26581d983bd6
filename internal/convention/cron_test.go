package convention

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		name     string
		cron     cyclonev1alpha1.CronTrigger
		after    string
		wantNext string
		wantErr  string
	}{
		{
			name:     "A five-field schedule is read in UTC",
			cron:     cyclonev1alpha1.CronTrigger{Schedule: "0 9 * * *"},
			after:    "2026-11-23T08:00:00Z",
			wantNext: "2026-11-23T09:00:00Z",
		},
		{
			name:     "The timezone field moves the schedule to that zone",
			cron:     cyclonev1alpha1.CronTrigger{Schedule: "0 9 * * *", Timezone: "Asia/Tokyo"},
			after:    "2026-11-23T01:00:00Z",
			wantNext: "2026-11-24T00:00:00Z",
		},
		{
			name:     "A CRON_TZ prefix wins over the timezone field",
			cron:     cyclonev1alpha1.CronTrigger{Schedule: "CRON_TZ=America/New_York 0 9 * * *", Timezone: "Asia/Tokyo"},
			after:    "2026-11-23T08:00:00Z",
			wantNext: "2026-11-23T14:00:00Z",
		},
		{
			name:     "A descriptor is accepted",
			cron:     cyclonev1alpha1.CronTrigger{Schedule: "@hourly"},
			after:    "2026-11-23T08:10:00Z",
			wantNext: "2026-11-23T09:00:00Z",
		},
		{
			name:    "An unknown time zone is refused with its name",
			cron:    cyclonev1alpha1.CronTrigger{Schedule: "0 9 * * *", Timezone: "Mars/Olympus"},
			wantErr: `time zone "Mars/Olympus"`,
		},
		{
			name:    "A schedule with six fields is refused",
			cron:    cyclonev1alpha1.CronTrigger{Schedule: "0 0 9 * * *"},
			wantErr: `schedule "0 0 9 * * *"`,
		},
		{
			name:    "A bad time zone is refused although the schedule names its own",
			cron:    cyclonev1alpha1.CronTrigger{Schedule: "CRON_TZ=UTC 0 9 * * *", Timezone: "Mars/Olympus"},
			wantErr: "spec.cron.timezone",
		},
		{
			name:    "An empty schedule is refused",
			cron:    cyclonev1alpha1.CronTrigger{},
			wantErr: "needs a schedule",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s, err := ParseSchedule(tt.cron)
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s.Next(mustTime(tt.after)).UTC()).To(Equal(mustTime(tt.wantNext)))
		})
	}
}
