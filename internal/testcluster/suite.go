package testcluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
)

// RunSuite runs a package's tests against one Cluster started with opts,
// which every test shares and which stops after the last one: starting a
// control plane takes seconds, a namespace per test isolates as well.
// setup, when not nil, gets the Cluster before any test runs (to make
// clients from it). In -short mode no Cluster starts and setup is not
// called; tests that need one skip themselves. Call it from TestMain as
// os.Exit(testcluster.RunSuite(m, opts, setup)).
func RunSuite(m *testing.M, opts Options, setup func(*Cluster) error) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	c, err := Start(context.Background(), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Stop()
	if setup != nil {
		if err := setup(c); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}
