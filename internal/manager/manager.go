// Package manager wires every gyre controller, the WorkflowRun engine,
// the trigger controllers and the webhook server into one
// controller-runtime manager.
package manager

import (
	"fmt"
	"net/http"
	"time"

	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/record"
	"github.com/gyreops/gyre/internal/runlogs"
	"github.com/gyreops/gyre/receiver"
	"github.com/gyreops/gyre/reconciler"
	"github.com/gyreops/gyre/source"
	"github.com/gyreops/gyre/trigger"
	"github.com/gyreops/gyre/web"
)

// Options configures gyre's controllers: `gyre controller`, `gyre dev`
// and the envtest suites build them the same way, from these.
type Options struct {
	// Options are the manager's servers and leader election.
	mgrconfig.Options
	// WebhookAddr serves SCM webhooks for WorkflowTriggers and push
	// events for Repositories; none when empty.
	WebhookAddr string
	// WebhookCertFile and WebhookKeyFile make the webhook server use TLS.
	WebhookCertFile, WebhookKeyFile string
	// WebhookReplayWindow is how long a webhook event sent again, under
	// a new delivery id, is taken for the one already received;
	// trigger.DefaultReplayWindow when 0.
	WebhookReplayWindow time.Duration
	// ArtifactDir holds the Repositories' checked-out artifacts.
	ArtifactDir string
	// LogDir keeps stage container logs after their Pods are gone, and
	// the webhook server serves them at LogsPath; none kept when empty
	// and Exec.Logs is nil.
	LogDir string
	// WebAddr serves the read-only web view (package web) to callers
	// with a token; none when empty.
	WebAddr string
	// Exec configures the WorkflowRun engine.
	Exec exec.Config
}

// LogsPath is where the webhook server serves stored stage logs (see
// runlogs.NewHandler for the routes below it).
const LogsPath = "/logs"

// logStore is where stage logs are kept: Exec.Logs, else a directory
// store on LogDir, else nowhere.
func logStore(o Options) runlogs.Store {
	if o.Exec.Logs != nil {
		return o.Exec.Logs
	}
	if o.LogDir != "" {
		return &runlogs.Dir{Root: o.LogDir}
	}
	return nil
}

// NewWebhookServer returns gyre's webhook server on o.WebhookAddr: SCM
// events for WorkflowTriggers at trigger.WebhookPath + "<namespace>", and
// push events for Repositories at receiver.Path. Both read Secrets from the
// API server, never from a cache.
//
// With a log store, it also serves the stored stage logs at LogsPath to
// callers allowed to get their run, checking their tokens and rights
// with the API server.
func NewWebhookServer(mgr ctrl.Manager, o Options) *trigger.WebhookServer {
	log := mgr.GetLogger().WithName("webhook")
	push := receiver.New(mgr.GetClient(), receiver.Options{
		APIReader: mgr.GetAPIReader(),
		Recorder:  record.Distinct(mgr.GetEventRecorder("gyre-receiver")),
		Logger:    log.WithName("repositories"),
	})
	routes := map[string]http.Handler{receiver.Path: push}
	if store := logStore(o); store != nil {
		if clientset, err := kubernetes.NewForConfig(mgr.GetConfig()); err != nil {
			log.Error(err, "Serving no logs")
		} else {
			routes[LogsPath+"/"] = http.StripPrefix(LogsPath, runlogs.NewHandler(store, clientset))
		}
	}
	return trigger.NewWebhookServer(mgr.GetClient(), trigger.WebhookOptions{
		Addr:         o.WebhookAddr,
		CertFile:     o.WebhookCertFile,
		KeyFile:      o.WebhookKeyFile,
		ReplayWindow: o.WebhookReplayWindow,
		APIReader:    mgr.GetAPIReader(),
		Recorder:     record.Distinct(mgr.GetEventRecorder("gyre-webhook")),
		Logger:       log,
		Routes:       routes,
	})
}

// Setup registers every gyre controller with mgr.
func Setup(mgr ctrl.Manager, o Options) error {
	if o.ArtifactDir == "" {
		return fmt.Errorf("artifact directory not set")
	}
	o.Exec.Logs = logStore(o)
	// Runs, triggers and Pods follow their Tenant's shard.
	o.Exec.Shard = o.Shard
	git := &source.Git{CacheDir: o.ArtifactDir}
	if err := (&reconciler.RepositoryReconciler{Git: git}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("repository controller: %w", err)
	}
	if err := (&reconciler.TenantReconciler{Artifacts: reconciler.StoreArtifacts{Store: git.Store()}}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("tenant controller: %w", err)
	}
	if err := (&exec.Engine{Config: o.Exec}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("workflowrun engine: %w", err)
	}
	if err := (&trigger.CronReconciler{Shard: o.Shard}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("cron triggers: %w", err)
	}
	if o.WebhookAddr != "" {
		if err := mgr.Add(NewWebhookServer(mgr, o)); err != nil {
			return fmt.Errorf("webhook server: %w", err)
		}
	}
	if o.WebAddr != "" {
		view, err := web.NewForManager(mgr, web.Options{Addr: o.WebAddr, Logs: o.Exec.Logs})
		if err == nil {
			err = mgr.Add(view)
		}
		if err != nil {
			return fmt.Errorf("web view: %w", err)
		}
	}
	if o.ProbeAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return err
		}
	}
	return nil
}
