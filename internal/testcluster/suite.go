package testcluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
)

// RunSuite runs a package's tests against one Cluster started with opts,
// which every test shares and which stops after the last one: starting a
// control plane takes seconds, a namespace per test isolates as well.
// setup, when not nil, gets the Cluster before any test runs (to make
// clients from it). In -short mode no Cluster starts and setup is not
// called; tests that need one skip themselves with Require. Every
// package's TestMain is
//
//	os.Exit(testcluster.RunSuite(m, opts, setup))
func RunSuite(m *testing.M, opts Options, setup func(*Cluster) error) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	started.Store(true)
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

// started is set once RunSuite starts a Cluster for the package's tests.
var started atomic.Bool

// Require skips a test that needs the package's Cluster when RunSuite
// started none (-short). The helpers that hand out a suite's clients call
// it, so a test that uses them needs no check of its own.
func Require(t testing.TB) {
	t.Helper()
	if !started.Load() {
		t.Skip("needs a control plane; -short starts none")
	}
}
