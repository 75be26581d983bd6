// Package devenv runs gyre end to end on one machine with nothing but its
// own binaries: a local control plane with simulated nodes, the example
// pipeline repository served by a real Git server, and every gyre
// controller in-process. `gyre dev` is its command line.
package devenv
