// Package template expands Cyclone's placeholders in the values a stage
// runs with: "${variables.NAME}", the generators "$(random:N)" and
// "$(timenow:FORMAT)", the mustache arguments "{{ NAME }}" of a Stage's
// workload, and the secret references "${secrets.NS:NAME/PATH}".
//
// Every expansion is a pure function of its inputs: generated values draw
// from a seed, never from the clock or a random source, so that a
// restarted engine builds the same Pod for the same attempt.
package template
