// Package cycloneimport turns the tenants of a running Cyclone into a
// pipeline repository gyre applies as it is.
//
// It reads each tenant's Cyclone objects from the tenant namespace
// (cyclone-<tenant>, Cyclone's own convention), strips what the API server
// and Cyclone's controllers wrote, and lays them out as gyre reads a
// repository: tenants/<tenant>/base. The Tenant and Repository to apply
// go under gyre/. Secret values never reach the repository: a Secret the
// objects refer to is written as a placeholder naming its keys, or
// encrypted to age recipients, under by-hand/, with any other object a
// stage needs in the worker namespace. The result is checked with gyre's
// own render; whatever cannot be carried over is moved aside and
// reported, never dropped in silence.
package cycloneimport
