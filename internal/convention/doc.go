// Package convention owns every Cyclone and gyre convention: the names of
// a tenant's namespaces, PVC and ServiceAccounts, every label, annotation,
// finalizer and field manager gyre writes, phase predicates, the parsing of
// timeouts, cron schedules and Workflow DAGs, run and Pod names, and the
// contract between a stage Pod and the helper programs it runs.
//
// render validates with these rules, and exec, trigger and the reconcilers
// execute with them, so a repository that renders cleanly is one the
// engine runs. The package imports only the API types and has no state.
package convention
