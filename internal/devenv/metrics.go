package devenv

import (
	"fmt"
	"net"
)

// localMetricsAddr picks a free port on 127.0.0.1 for the controllers'
// Prometheus metrics: gyre dev shows them to this machine only.
func localMetricsAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a port for the metrics server: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// sayMetrics prints where the gyre_ metrics (and controller-runtime's)
// are served.
func sayMetrics(p *printer, addr string) {
	p.say("Metrics at http://%s/metrics", addr)
}
