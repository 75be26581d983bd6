// Package ha tests gyre's high availability end to end: two `gyre
// controller` processes elect a leader through their lease, and when the
// leader is killed without releasing it, the other takes over and
// finishes the work, applying every object exactly as Git says.
package ha
