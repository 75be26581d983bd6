// Package shard tests gyre's sharding: two `gyre controller --shard`
// managers side by side on one control plane, each converging only its
// own Tenants and running only their runs, and a Tenant moved from one
// shard to the other with a run in flight.
package shard
