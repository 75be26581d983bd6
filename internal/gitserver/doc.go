// Package gitserver serves Git repositories on loopback for tests and
// local runs: the real git http-backend over HTTP(S) with optional basic
// or bearer authentication, and an in-process SSH server that runs the
// real git-upload-pack and git-receive-pack. Repo builds repositories
// with real commits through the git command line.
package gitserver
