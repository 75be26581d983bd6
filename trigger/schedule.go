package trigger

import (
	"strconv"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/gyreops/gyre/internal/convention"
)

// Defaults of the cron catch-up knobs.
const (
	// DefaultMaxCatchUp is how many missed times the All policy starts runs
	// for when maxCatchUp is unset.
	DefaultMaxCatchUp = 10
	// OnTimeWindow is how long before the controller started a scheduled
	// time may be, or how late the controller may see it, and still count
	// as on time rather than missed, for the None policy.
	OnTimeWindow = time.Minute
)

// latestTimes returns the latest scheduled times of s in (after, now], at
// most limit of them, oldest first, and whether older times in that range
// were left out.
//
// It looks back from now in a doubling window rather than forward from
// after, so an outage of months on a per-minute schedule costs about
// 2×limit schedule steps, not one step per missed minute.
func latestTimes(s cron.Schedule, after, now time.Time, limit int) ([]time.Time, bool) {
	if limit < 1 || !now.After(after) {
		return nil, false
	}
	for window := time.Minute; ; window *= 2 {
		start := now.Add(-window)
		if !start.After(after) || window > 100*365*24*time.Hour {
			start = after
		}
		times := make([]time.Time, 0, limit)
		for t := s.Next(start); !t.IsZero() && !t.After(now); t = s.Next(t) {
			if len(times) == limit {
				copy(times, times[1:])
				times = times[:limit-1]
			}
			times = append(times, t)
		}
		if len(times) < limit && start.After(after) {
			continue
		}
		older := false
		if len(times) > 0 {
			first := s.Next(after)
			older = !first.IsZero() && first.Before(times[0])
		}
		return times, older
	}
}

// runSuffix is the part of a cron run's name that says its scheduled time:
// Unix minutes, or Unix seconds for a time off the minute, as "@every 30s"
// schedules give.
func runSuffix(t time.Time) string {
	if t.Second() == 0 {
		return strconv.FormatInt(t.Unix()/60, 10)
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// cronRunName is the name of the run trigger starts for scheduled time t.
func cronRunName(trigger string, t time.Time) string {
	return convention.RunName(trigger, runSuffix(t))
}
