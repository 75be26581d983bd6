// Package netguard builds HTTP clients that refuse to connect to addresses
// inside the cluster or the node, for the requests gyre makes on behalf of
// tenants.
package netguard
