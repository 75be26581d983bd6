package devenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/exec/notify"
	"github.com/gyreops/gyre/internal/netguard"
)

// notifierHost is the in-cluster address of the notification service the
// example's notify stage delegates to. The local control plane has no
// Services and no cluster DNS, so gyre dev answers that name itself.
const notifierHost = "notifier.cyclone-system.svc"

// notifier is gyre dev's stand-in for the cluster's notification
// service: it prints one line per request it gets, and reports a
// delegated stage done, as the real service would once it has posted.
type notifier struct {
	c    client.Client
	p    *printer
	ln   net.Listener
	srv  *http.Server
	addr netip.AddrPort
}

// startNotifier serves the notifier on a free port of 127.0.0.1.
func startNotifier(c client.Client, p *printer) (*notifier, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start the local notifier: %w", err)
	}
	n := &notifier{c: c, p: p, ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	n.srv = &http.Server{Handler: n, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = n.srv.Serve(ln) }()
	return n, nil
}

// Close stops the notifier.
func (n *notifier) Close() error { return n.srv.Close() }

// URL is where the notifier is reached from this machine.
func (n *notifier) URL() string { return "http://" + n.addr.String() }

// outbound gives the engine a client that reaches the notifier under
// notifierHost, and no other loopback address: the guard allows exactly
// the notifier's address and port.
func (n *notifier) outbound(c *exec.Config) error {
	guard, err := netguard.New(netguard.Policy{Allow: []string{n.addr.String()}})
	if err != nil {
		return err
	}
	tr := guard.Transport()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && host == notifierHost && port == "80" {
			addr = n.addr.String()
		}
		return dial(ctx, network, addr)
	}
	c.Outbound = guard
	c.HTTPClient = &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return nil
}

// ServeHTTP takes a delegation request (a notify stage) or a Workflow's
// webhook notification (a run as JSON) and prints what it got.
func (n *notifier) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var d notify.DelegationRequest
	if err := json.Unmarshal(body, &d); err == nil && d.Stage != nil && d.WorkflowRun != nil {
		run := d.WorkflowRun
		attempt := int32(0)
		if ss := run.Status.Stages[d.Stage.Name]; ss != nil {
			attempt = ss.Attempt
		}
		config := ""
		if d.Stage.Spec.Delegation != nil {
			config = d.Stage.Spec.Delegation.Config
		}
		n.p.say("  Notifier got POST %s: stage %s of WorkflowRun %s/%s, attempt %d, config %s",
			req.URL.Path, d.Stage.Name, run.Namespace, run.Name, attempt, config)
		w.WriteHeader(http.StatusOK)
		go n.report(run.Namespace, run.Name, d.Stage.Name)
		return
	}
	var run cyclonev1alpha1.WorkflowRun
	if err := json.Unmarshal(body, &run); err != nil || run.Name == "" {
		n.p.say("  Notifier got POST %s: %d bytes it cannot read", req.URL.Path, len(body))
		http.Error(w, "neither a delegation request nor a WorkflowRun", http.StatusBadRequest)
		return
	}
	n.p.say("  Notifier got POST %s: WorkflowRun %s/%s %s", req.URL.Path, run.Namespace, run.Name, run.Status.Overall.Phase)
	w.WriteHeader(http.StatusOK)
}

// report marks a delegated stage Succeeded on its run, through the API,
// as a delegation service does when its work is done.
func (n *notifier) report(ns, name, stage string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		run := &cyclonev1alpha1.WorkflowRun{}
		if err := n.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, run); err != nil {
			return err
		}
		ss := run.Status.Stages[stage]
		if ss == nil {
			return errors.New("the run has no stage " + stage)
		}
		now := metav1.Now()
		ss.Status.Phase, ss.Status.Reason, ss.Status.Message = cyclonev1alpha1.StatusSucceeded, "Notified", "posted by gyre dev's notifier"
		ss.Status.LastTransitionTime = &now
		return n.c.Status().Update(ctx, run)
	})
	if err != nil {
		n.p.say("  Notifier could not report stage %s of WorkflowRun %s/%s: %v", stage, ns, name, err)
	}
}
