package testcluster

import (
	"os"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// SetLogger gives controller-runtime a logger for a package's tests: the
// controllers' logs on standard error when GYRE_TEST_LOG is set, which
// helps when a test fails, and nothing otherwise, so that passing tests
// stay quiet.
func SetLogger() {
	if os.Getenv("GYRE_TEST_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}
}
