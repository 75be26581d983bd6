package trigger

import (
	"time"

	"github.com/robfig/cron/v3"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// cronPlan is what one reconcile of a cron trigger does.
type cronPlan struct {
	// fire are the scheduled times to start runs for, oldest first.
	fire []time.Time
	// missed reports that due times were skipped: older than the deadline,
	// beyond the catch-up policy or its cap.
	missed bool
	// ledger is the latest due time, fired or skipped; zero when no time
	// became due since the last ledger.
	ledger time.Time
	// next is the first scheduled time after now.
	next time.Time
}

// planCron decides which scheduled times in (since, now] start runs.
//
// since is the trigger's ledger, or its creation time before it has one;
// upSince is when this controller started watching. The catch-up policy
// picks from the due times: None only a time that came while the
// controller was up (or within OnTimeWindow of now), Latest the latest,
// All the latest maxCatchUp ones. startingDeadlineSeconds then drops any
// time too old to start.
//
// None judges by upSince rather than by lateness alone so that a busy
// controller, working through a thousand triggers due in the same minute,
// never mistakes its own queue for an outage.
func planCron(s cron.Schedule, c cyclonev1alpha1.CronTrigger, since, now, upSince time.Time) cronPlan {
	limit := 1
	if c.CatchUp == cyclonev1alpha1.CatchUpAll {
		limit = DefaultMaxCatchUp
		if c.MaxCatchUp != nil {
			limit = max(int(*c.MaxCatchUp), 1)
		}
	}
	deadline := time.Duration(-1)
	if c.StartingDeadlineSeconds != nil {
		deadline = time.Duration(*c.StartingDeadlineSeconds) * time.Second
	}
	missed := func(t time.Time) bool {
		if deadline >= 0 && now.Sub(t) > deadline {
			return true
		}
		return c.CatchUp == cyclonev1alpha1.CatchUpNone &&
			t.Before(upSince.Add(-OnTimeWindow)) && now.Sub(t) > OnTimeWindow
	}

	p := cronPlan{next: s.Next(now)}
	due, older := latestTimes(s, since, now, limit)
	if len(due) == 0 {
		return p
	}
	p.ledger = due[len(due)-1]
	p.missed = older
	for _, t := range due {
		if missed(t) {
			p.missed = true
			continue
		}
		p.fire = append(p.fire, t)
	}
	return p
}
