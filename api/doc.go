// Package api is the root of gyre's API groups: cyclone.dev/v1alpha1
// (Cyclone's pipeline kinds, wire-compatible) and gyre.dev/v1alpha1
// (Repository and Tenant). Its tests hold the API to its promises against a
// real API server.
package api
