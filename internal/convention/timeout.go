package convention

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ParseTimeout reads a run's or a stage's timeout: Cyclone's spelling
// ("30min", "2hour", "1h30m", "45second") or a Go duration. Empty means
// none, and gives 0.
func ParseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if m := cycloneDurationRe.FindStringSubmatch(strings.ToLower(s)); m != nil {
		var d time.Duration
		for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second} {
			if m[i+1] != "" {
				n, err := strconv.Atoi(m[i+1])
				if err != nil {
					return 0, fmt.Errorf("timeout %q: %w", s, err)
				}
				d += time.Duration(n) * unit
			}
		}
		return d, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = fmt.Errorf("negative duration %q", s)
	}
	return d, err
}

// cycloneDurationRe matches the durations Cyclone's workflow controller
// reads: hours, minutes and seconds in that order, each optional, as
// "h" or "hour", "m" or "min", "s" or "second".
var cycloneDurationRe = regexp.MustCompile(`^(?:(\d+)h(?:our)?)?(?:(\d+)m(?:in)?)?(?:(\d+)s(?:econd)?)?$`)
