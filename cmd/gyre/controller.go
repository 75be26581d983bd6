package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/manager"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/netguard"
	"github.com/gyreops/gyre/internal/shard"
	"github.com/gyreops/gyre/trigger"
)

func newControllerCmd() *cobra.Command {
	var (
		o           manager.Options
		kubeconfig  string
		development bool
		qps         float32
		burst       int
		// Files of the notification secrets, as a mounted Secret gives
		// them: a flag's value would show in the Pod spec and in ps.
		smtpPasswordFile string
		slackTokenFile   string
		// The outbound policy of requests made for tenants.
		allowOutbound, serviceCIDRs, podCIDRs []string
	)
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run gyre's controllers against a cluster",
		Long: `Run every gyre controller: Repositories are polled, Tenants rendered,
applied and pruned, WorkflowRuns executed, WorkflowTriggers fired.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("shard") {
				if err := shard.Validate(o.Shard); err != nil {
					return fmt.Errorf("--shard: %w", err)
				}
			}
			if err := notificationSecrets(&o, smtpPasswordFile, slackTokenFile); err != nil {
				return err
			}
			guard, err := outboundGuard(allowOutbound, serviceCIDRs, podCIDRs)
			if err != nil {
				return err
			}
			o.Exec.Outbound = guard
			ctrl.SetLogger(zap.New(zap.UseDevMode(development)))
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			cfg.QPS, cfg.Burst = qps, burst
			scheme, err := mgrconfig.NewScheme()
			if err != nil {
				return err
			}
			mgr, err := ctrl.NewManager(cfg, o.Manager(scheme))
			if err != nil {
				return fmt.Errorf("create manager: %w", err)
			}
			if err := manager.Setup(mgr, o); err != nil {
				return err
			}
			return mgr.Start(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the control cluster; in-cluster or $KUBECONFIG when empty")
	f.StringVar(&o.MetricsAddr, "metrics-addr", ":8080", `address of the Prometheus metrics endpoint; "0" turns it off`)
	f.StringVar(&o.ProbeAddr, "health-addr", ":9440", `address of /healthz and /readyz; "0" turns them off`)
	f.BoolVar(&o.LeaderElection, "leader-elect", false, "elect one active replica; the others serve webhooks, the web view and metrics, and take over when the leader stops renewing its lease")
	f.StringVar(&o.LeaderElectionNamespace, "leader-elect-namespace", "", "namespace of the lease; the controller's own namespace when empty, which a controller outside the cluster must set")
	f.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long after the leader's last renewal another replica takes over")
	f.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader tries to renew its lease before it stops; less than --leader-elect-lease-duration")
	f.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often replicas try to take or renew the lease")
	f.StringVar(&o.Shard, "shard", "", "handle only the Repositories and Tenants labelled "+convention.ShardLabel+"=NAME, and the runs, triggers and Pods of those Tenants; without it, those without the label. Each shard elects its own leader")
	f.StringVar(&o.WebhookAddr, "webhook-addr", ":9292", "address of the webhook server: SCM events for WorkflowTriggers at /webhooks/<namespace>, push events for Repositories at /webhooks/repositories; empty turns it off")
	f.StringVar(&o.WebAddr, "web-addr", ":9090", "address of the read-only web view, which shows each user what their bearer token may get; empty turns it off")
	f.StringVar(&o.WebhookCertFile, "webhook-tls-cert", "", "TLS certificate of the webhook server")
	f.StringVar(&o.WebhookKeyFile, "webhook-tls-key", "", "TLS key of the webhook server")
	f.DurationVar(&o.WebhookReplayWindow, "webhook-replay-window", trigger.DefaultReplayWindow, "how long a webhook event sent again under a new delivery id (same trigger, kind, commit and comment) starts no second run")
	f.StringVar(&o.ArtifactDir, "artifact-dir", "/data/artifacts", "directory of the Repositories' checked-out artifacts")
	f.StringVar(&o.LogDir, "log-dir", "/data/logs", "directory that keeps stage container logs after their Pods are removed, served on the webhook server at /logs/<namespace>/<run>/<stage>; empty keeps none")
	f.BoolVar(&development, "log-development", false, "human-friendly logs")
	// client-go's own default, 5 requests a second, would make a first
	// apply of a few thousand objects take minutes.
	f.Float32Var(&qps, "kube-api-qps", 50, "requests per second to the control cluster's API server, on average")
	f.IntVar(&burst, "kube-api-burst", 300, "requests to the control cluster's API server in a burst")
	f.DurationVar(&o.Exec.GCDelay, "gc-delay", 0, "how long a finished run's stage Pods and scratch data are kept before they are removed")
	runFlags(f, &o.Exec)
	// Cyclone deletes finished runs only past a Workflow's historyLimit,
	// so keeping them is the default a Cyclone user expects.
	f.DurationVar(&o.Exec.RunTTL, "run-ttl", 0, "how long a finished WorkflowRun is kept after its completion before it is deleted, for Workflows without spec.ttlSecondsAfterFinished; 0 keeps runs until historyLimit or a user deletes them, as Cyclone does")
	imageFlags(f, &o.Exec)
	f.StringVar(&o.Exec.SMTP.Addr, "smtp-addr", "", "host:port of the SMTP server that sends Email notifications; none when empty")
	f.StringVar(&o.Exec.SMTP.From, "smtp-from", "", "sender address of Email notifications")
	f.StringVar(&o.Exec.SMTP.Username, "smtp-username", "", "user that authenticates with the SMTP server; none when empty")
	f.StringVar(&smtpPasswordFile, "smtp-password-file", "", "file holding the SMTP user's password")
	f.StringVar(&slackTokenFile, "slack-token-file", "", "file holding the Slack bot token that posts to channels; webhook URLs need none")
	f.StringSliceVar(&allowOutbound, "allow-outbound", nil, "hosts, CIDRs and IP:port addresses that notifications and delegation requests may reach although they are loopback, link-local, metadata or cluster addresses; comma-separated or repeated")
	f.StringSliceVar(&serviceCIDRs, "service-cidr", nil, "the cluster's Service ranges, which notifications and delegation requests may not reach; comma-separated or repeated")
	f.StringSliceVar(&podCIDRs, "pod-cidr", nil, "the cluster's Pod ranges, which notifications and delegation requests may not reach; comma-separated or repeated")
	return cmd
}

// runFlags binds how the engine paces and waits for a tenant's runs to
// flags.
func runFlags(f *pflag.FlagSet, c *exec.Config) {
	f.IntVar(&c.TenantParallelism, "tenant-parallelism", 0, "stages that may run at once across all runs of one tenant; 0 means no cap")
	f.DurationVar(&c.MissingGracePeriod, "missing-grace-period", 30*time.Second, "how long after a run's creation its Workflow, Stages, Resources and tenant PVC may still be missing before the run fails")
	f.DurationVar(&c.RunningReportDelay, "status-report-delay", time.Second, "how long a run's status write may wait so that stage changes close together share one write, and how long a stage's Pod runs before the stage shows Running; longer writes less; negative writes every change at once")
	f.DurationVar(&c.MaxRunningReportDelay, "status-report-max-delay", 5*time.Second, "how far --status-report-delay stretches with the runs in progress, by itself again for every 20 of them, so that a busy engine writes less; at or below --status-report-delay it stays fixed")
}

// imageFlags binds the images of stage Pods, as Cyclone's workflow
// controller configures them, to flags.
func imageFlags(f *pflag.FlagSet, c *exec.Config) {
	f.StringToStringVar(&c.ResolverImages, "resolver-image", nil, `resolver image by Resource type, e.g. "Image=cyclone-resolver-image:v1.2,Svn=cyclone-resolver-svn:v1.2"; a Resource's own spec.resolver wins`)
	f.StringVar(&c.DefaultResolverImage, "default-resolver-image", "", "image of gyre that resolves Git, Http and General Resources no --resolver-image covers (default "+exec.DefaultHelperImage+")")
	f.StringVar(&c.CoordinatorImage, "coordinator-image", "", "image of gyre that runs every stage Pod's coordinator (default "+exec.DefaultHelperImage+")")
	f.StringVar(&c.GCImage, "gc-image", "", "image of the GC Pod that removes a finished run's data (default "+exec.DefaultGCImage+")")
	f.StringVar(&c.DindImage, "dind-image", "", "image of the Docker daemon sidecar of stages that output an Image Resource (default "+exec.DefaultDindImage+")")
	f.BoolVar(&c.NoDind, "no-dind", false, "give stages that output an Image Resource no Docker daemon: for clusters that allow no privileged container")
	f.StringVar(&c.DindBip, "dind-bip", "", "--bip of the Docker daemon sidecar")
	f.StringSliceVar(&c.DindInsecureRegistries, "dind-insecure-registry", nil, "registry the Docker daemon sidecar reaches without TLS; repeatable")
}

// notificationSecrets completes o's notification settings with the
// secrets read from their files, and checks that the SMTP flags go
// together.
func notificationSecrets(o *manager.Options, smtpPasswordFile, slackTokenFile string) error {
	if o.Exec.SMTP.Addr != "" && o.Exec.SMTP.From == "" {
		return errors.New("--smtp-addr needs --smtp-from")
	}
	var err error
	if smtpPasswordFile != "" {
		if o.Exec.SMTP.Password, err = readSecretFile("--smtp-password-file", smtpPasswordFile); err != nil {
			return err
		}
	}
	if slackTokenFile != "" {
		if o.Exec.SlackToken, err = readSecretFile("--slack-token-file", slackTokenFile); err != nil {
			return err
		}
	}
	return nil
}

// outboundGuard is the policy of the requests made for tenants, from the
// flags; its errors name the flag.
func outboundGuard(allow, serviceCIDRs, podCIDRs []string) (*netguard.Guard, error) {
	for _, c := range []struct {
		flag string
		p    netguard.Policy
	}{
		{"--allow-outbound", netguard.Policy{Allow: allow}},
		{"--service-cidr", netguard.Policy{ClusterCIDRs: serviceCIDRs}},
		{"--pod-cidr", netguard.Policy{ClusterCIDRs: podCIDRs}},
	} {
		if _, err := netguard.New(c.p); err != nil {
			return nil, fmt.Errorf("%s: %w", c.flag, err)
		}
	}
	return netguard.New(netguard.Policy{Allow: allow, ClusterCIDRs: append(slices.Clone(serviceCIDRs), podCIDRs...)})
}

// readSecretFile reads the secret in path, without the line end an editor
// or "kubectl create secret --from-file" leaves. Its errors name the flag,
// never the content.
func readSecretFile(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("%s: %s is empty", flag, path)
	}
	return secret, nil
}
