package convention

import (
	"fmt"
	"strings"
	"time"
	// Time zones must resolve in a distroless image with no zoneinfo.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// FieldError is a rule broken by one field of an object, named by its
// path in the object ("spec.cron.schedule"), so that render can say which
// line of which file to fix.
type FieldError struct {
	// Field is the path of the field in the object.
	Field string
	// Err says what is wrong with it.
	Err error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// ParseSchedule reads a Cron trigger's schedule in its time zone with
// robfig/cron's standard parser: five fields, descriptors such as
// "@hourly", an optional CRON_TZ= or TZ= prefix, which wins over
// spec.cron.timezone. Errors are *FieldError.
func ParseSchedule(c cyclonev1alpha1.CronTrigger) (cron.Schedule, error) {
	spec := strings.TrimSpace(c.Schedule)
	if spec == "" {
		return nil, &FieldError{Field: "spec.cron.schedule", Err: fmt.Errorf("a Cron trigger needs a schedule")}
	}
	if c.Timezone != "" {
		if _, err := time.LoadLocation(c.Timezone); err != nil {
			return nil, &FieldError{Field: "spec.cron.timezone", Err: fmt.Errorf("unknown time zone %q", c.Timezone)}
		}
		if !strings.HasPrefix(spec, "CRON_TZ=") && !strings.HasPrefix(spec, "TZ=") {
			spec = "CRON_TZ=" + c.Timezone + " " + spec
		}
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, &FieldError{Field: "spec.cron.schedule", Err: fmt.Errorf("invalid schedule %q: %w", c.Schedule, err)}
	}
	return s, nil
}
