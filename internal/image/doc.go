// Package image builds gyre's container image, reproducibly, from a static
// gyre binary.
package image
