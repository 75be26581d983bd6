// Package reconciler holds gyre's controller-runtime reconcilers: the
// Repository reconciler polls Git and keeps each Repository's artifact on
// disk, and the Tenant reconciler renders, applies and prunes each
// tenant's targets from that artifact.
package reconciler
