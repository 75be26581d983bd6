package convention

import (
	"errors"
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
// spec.cron.timezone. Its error joins one *FieldError per bad field.
func ParseSchedule(c cyclonev1alpha1.CronTrigger) (cron.Schedule, error) {
	var errs []error
	spec := strings.TrimSpace(c.Schedule)
	if c.Timezone != "" {
		if _, err := time.LoadLocation(c.Timezone); err != nil {
			errs = append(errs, &FieldError{Field: "spec.cron.timezone", Err: fmt.Errorf("unknown time zone %q", c.Timezone)})
		} else if spec != "" && !strings.HasPrefix(spec, "CRON_TZ=") && !strings.HasPrefix(spec, "TZ=") {
			spec = "CRON_TZ=" + c.Timezone + " " + spec
		}
	}
	var s cron.Schedule
	if spec == "" {
		errs = append(errs, &FieldError{Field: "spec.cron.schedule", Err: fmt.Errorf("a Cron trigger needs a schedule")})
	} else {
		var err error
		if s, err = cron.ParseStandard(spec); err != nil {
			errs = append(errs, &FieldError{Field: "spec.cron.schedule", Err: fmt.Errorf("invalid schedule %q: %w", c.Schedule, err)})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// FieldErrors returns the *FieldErrors in err, which may join several.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}
