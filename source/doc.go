// Package source turns a Git reference into a checked-out artifact
// directory.
//
// A Git resolves a branch, tag, semver range or commit with one remote ref
// listing and fetches only when the resolved commit differs from the last
// artifact's: polling an unchanged remote costs one round trip. Fetches are
// shallow and single-ref when the server allows it. Each checkout lands
// atomically in a content-addressed directory, <cache>/<name>/<commit>, with
// ignored paths and .git left out and a deterministic tree digest; symlinks
// that leave the checkout are refused. Dir and LocalCommit give the same
// Artifact for a local directory and for a commit of a local clone, so the
// command line renders exactly what the controller would.
package source
