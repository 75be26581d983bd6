// Package tenants provisions what a tenant needs on the clusters it uses.
//
// A tenant t owns namespace cyclone-t on the control cluster, for its
// Cyclone objects, and namespace cyclone-t-worker on every execution
// cluster it runs on, holding its stage Pods, its ResourceQuota, its PVC
// and the ServiceAccount and RBAC the Pods run as. Provision makes those
// objects match the Tenant with server-side apply, writing nothing when
// they already do; Remove deletes them. Clients reaches execution clusters
// with the credentials clusters.Config reads from their ExecutionCluster:
// a kubeconfig Secret, or Cyclone's inline credential.
package tenants
