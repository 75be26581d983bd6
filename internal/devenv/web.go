package devenv

import (
	"fmt"
	"net"
	"path/filepath"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gyreops/gyre/internal/runlogs"
	"github.com/gyreops/gyre/web"
)

// serveWeb adds the web view to mgr on a free port of 127.0.0.1, open to
// whoever reaches it there with the controller's rights, as the local
// control plane's admin kubeconfig already is, and says where it is.
func serveWeb(mgr ctrl.Manager, p *printer, dir string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("pick a port for the web view: %w", err)
	}
	o := web.Options{Listener: ln, TrustLocal: true}
	if dir != "" {
		o.Logs = &runlogs.Dir{Root: dir}
	}
	view, err := web.NewForManager(mgr, o)
	if err != nil {
		ln.Close()
		return err
	}
	if err := mgr.Add(view); err != nil {
		ln.Close()
		return err
	}
	p.say("Web view at http://%s/runs", ln.Addr())
	return nil
}

// logDir keeps stage logs after their Pods are gone, for the web view and
// gyre logs, where stages write any: kwok's simulated containers have no
// log to read, and reading theirs would only wait for a timeout.
func logDir(stateDir, node string) string {
	if node != NodeReal {
		return ""
	}
	return filepath.Join(stateDir, "logs")
}
