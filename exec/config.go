package exec

import (
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/clock"

	"github.com/gyreops/gyre/exec/notify"
	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/netguard"
	"github.com/gyreops/gyre/internal/runlogs"
)

// Config configures an Engine. The zero value works: every unset field
// takes the default its comment gives.
type Config struct {
	// Shard is the shard of this replica (gyre controller --shard): the
	// engine runs only the WorkflowRuns of its shard's Tenants; "" runs
	// those of Tenants without a shard, and the runs outside every Tenant.
	Shard string
	// ResolverImages maps a Resource type (Git, Image, Http, ...) to the
	// image that pulls and pushes it, for Resources that name no resolver
	// of their own.
	ResolverImages map[string]string
	// DefaultResolverImage resolves Resources of a type ResolverImages does
	// not list. Its entrypoint must be the gyre binary: its containers run
	// "resolve <type> pull|push", while the images of ResolverImages and of
	// a Resource's spec.resolver get Cyclone's single "pull" or "push".
	// Default "gyre.dev/gyre:dev".
	DefaultResolverImage string
	// CoordinatorImage runs the coordinator sidecar of every stage Pod, as
	// "coordinator"; its entrypoint must be the gyre binary. Default
	// "gyre.dev/gyre:dev".
	CoordinatorImage string
	// GCImage runs the GC Pod that removes a finished run's scratch data.
	// Default "busybox:1.37".
	GCImage string
	// DindImage runs the Docker daemon sidecar that a stage with an Image
	// output resource gets, as in Cyclone. Default "docker:28-dind".
	DindImage string
	// NoDind gives such stages no daemon: for clusters that allow no
	// privileged container, and stages that build images without Docker.
	NoDind bool
	// DindBip and DindInsecureRegistries are the daemon's --bip and
	// --insecure-registry settings, Cyclone's dind settings.
	DindBip                string
	DindInsecureRegistries []string

	// WorkerNamespace gives the namespace of a tenant's stage Pods when the
	// run's executionContext names none. Default "cyclone-<tenant>-worker".
	WorkerNamespace func(tenant string) string
	// PVCName gives the tenant PVC that stages share when the run's
	// executionContext names none. Default "cyclone-pvc-<tenant>", Cyclone's
	// name. An empty result gives each stage Pod an emptyDir instead, and
	// then there is no scratch data to collect and no GC Pod.
	PVCName func(tenant string) string
	// ServiceAccount runs stage Pods whose Stage and run name none; they
	// get its API token only when their Stage asks for it. Default
	// "cyclone-worker", which gyre provisions in each worker namespace
	// with no rights but those its Tenant's workerAccess grants.
	ServiceAccount string
	// ControllerServiceAccount is the ServiceAccount gyre itself runs as;
	// no stage Pod may run as it, in whatever namespace. Default
	// "gyre-controller".
	ControllerServiceAccount string
	// IgnorePersistence pulls a persistent Resource into the run's data
	// like any other, instead of into its own PVC: for a simulated cluster
	// (gyre dev) that has none of the PVCs the pipelines name.
	IgnorePersistence bool

	// GCPodLabels and GCPodAnnotations are added to every GC Pod, for
	// instance to place it or, in tests, to pick its fate.
	GCPodLabels      map[string]string
	GCPodAnnotations map[string]string
	// GCAttempts is how many GC Pods are tried before GC is marked Failed.
	// Default 3.
	GCAttempts int32
	// GCTimeout fails a GC attempt that has not finished in time.
	// Default 10 minutes.
	GCTimeout time.Duration
	// GCResources sizes the GC Pod's container, so that a worker
	// namespace whose ResourceQuota counts CPU and memory admits it.
	// Default Cyclone's: requests 100m CPU and 128Mi memory, limits 200m
	// and 256Mi.
	GCResources corev1.ResourceRequirements
	// GCDelay keeps a finished run's stage Pods and scratch data this long
	// before GC removes them, as Cyclone's gc.delaySeconds does: time to
	// read the Pods' logs and look at the data. It counts from the run's
	// completion time, so a restart does not start it over. A deleted run
	// is cleaned at once. Default 0.
	GCDelay time.Duration

	// TenantParallelism caps the stages running at once across all runs of
	// one tenant (gyre controller --tenant-parallelism); 0 means no cap.
	// It holds exactly however many reconciles run at once: the engine
	// counts other runs' stages as it last decided them, not as its cache
	// shows them (see tenantLoad).
	TenantParallelism int
	// ImagePullGracePeriod is how long a stage Pod may wait on an image
	// pull error before the attempt fails. Default 2 minutes.
	ImagePullGracePeriod time.Duration
	// RetryBackoff is the wait before the second attempt of a failed stage;
	// it doubles with every further attempt up to MaxRetryBackoff.
	// Defaults 10 seconds and 5 minutes.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// RunningReportDelay holds back a stage's move from Pending to Running
	// in the status until the engine has seen its Pod running this long,
	// so that a stage that finishes quickly costs one status write instead
	// of two. It also bounds how long the status of a run in progress may
	// lag behind its Pods: stages that end and start within it share one
	// status write (their Pods are created at once all the same). A move
	// to Running, held back first, may lag by twice it. The times written
	// are the containers' own, not the write's (see ranAt). Not with a
	// TenantParallelism. Default 1 second; negative reports every change
	// at once.
	RunningReportDelay time.Duration
	// MaxRunningReportDelay caps RunningReportDelay as it stretches with
	// the runs in progress: by RunningReportDelay again for every 20 of
	// them, so that a busy engine writes one status per run for several
	// stages, not one per stage (see reportDelay). Default 5 seconds; a
	// value below RunningReportDelay keeps it fixed.
	MaxRunningReportDelay time.Duration
	// WaitInterval is how often a run blocked by the tenant cap or an
	// unreachable execution cluster looks again. A run blocked by the cap
	// is also woken as soon as another run of its tenant ends a stage;
	// the interval covers what that misses, such as a run held back
	// before a restart. Default 5 seconds.
	WaitInterval time.Duration
	// MissingGracePeriod is how long after a run's creation the Workflow,
	// Stages and Resources it names may still be missing from the
	// engine's cache before the run or stage fails. One Git commit adds a
	// run and its Workflow together, but the engine may see the run
	// first; waiting keeps that lag from failing the run. Default 30
	// seconds.
	MissingGracePeriod time.Duration

	// MaxConcurrentReconciles is how many runs are reconciled at once.
	// Default 32: a reconcile mostly waits on the API server, and when
	// many Pods finish together (a burst of runs) more workers shorten
	// the wait in the queue from a dependency's end to the next stage
	// (BenchmarkEngine: from about 2 s with 16 to 0.3 s with 32, for the
	// same stages per second).
	MaxConcurrentReconciles int
	// HTTPClient sends webhook and Slack notifications and delegation
	// requests. Default a client on Outbound with a 10-second timeout.
	// A client set here is used as it is, unguarded.
	HTTPClient *http.Client
	// Outbound decides which addresses the requests made for tenants may
	// reach: by default none on loopback, link-local, metadata or
	// multicast addresses. Set its cluster ranges so that tenants cannot
	// reach in-cluster services either.
	Outbound *netguard.Guard
	// SMTP is the mail server that sends Email notifications; without
	// one, they are recorded as failed.
	SMTP notify.SMTPConfig
	// SlackToken is the bot token that posts Slack notifications to a
	// channel with chat.postMessage. Receivers whose address is an
	// incoming-webhook URL need none.
	SlackToken string
	// SlackAPIURL is the base URL of Slack's Web API, to which method
	// names such as "chat.postMessage" are appended. Default
	// "https://slack.com/api/".
	SlackAPIURL string
	// RunTTL deletes a finished run this long after its completion time
	// when its Workflow sets no ttlSecondsAfterFinished. 0, the default,
	// keeps finished runs until historyLimit or a user deletes them, as
	// Cyclone does.
	RunTTL time.Duration
	// Clock tells the time; tests inject a fake one. Default the real
	// clock.
	Clock clock.Clock

	// Logs keeps each stage container's log, read through pods/log, just
	// before the engine deletes the stage Pod, and loses a run's logs
	// with the run. Nil keeps none.
	Logs runlogs.Store
	// LogTimeout bounds the time the engine spends keeping the logs of
	// the Pods it is about to delete in one reconcile; a log not read by
	// then is kept as far as it was read. Default 30 seconds.
	LogTimeout time.Duration
	// LogMaxBytes caps what is read of one container log. Default
	// runlogs.DefaultMaxBytes.
	LogMaxBytes int64
}

// Default images, chosen so that a bare Config gives runnable Pods.
const (
	DefaultHelperImage = "gyre.dev/gyre:dev" // make image builds it; load it on the nodes
	DefaultGCImage     = "busybox:1.37"
	DefaultDindImage   = "docker:28-dind"
)

// withDefaults returns c with every unset field set to its default.
func (c Config) withDefaults() Config {
	if c.DefaultResolverImage == "" {
		c.DefaultResolverImage = DefaultHelperImage
	}
	if c.CoordinatorImage == "" {
		c.CoordinatorImage = DefaultHelperImage
	}
	if c.GCImage == "" {
		c.GCImage = DefaultGCImage
	}
	switch {
	case c.NoDind:
		c.DindImage = ""
	case c.DindImage == "":
		c.DindImage = DefaultDindImage
	}
	if c.WorkerNamespace == nil {
		c.WorkerNamespace = convention.WorkerNamespace
	}
	if c.ServiceAccount == "" {
		c.ServiceAccount = convention.WorkerServiceAccount
	}
	if c.ControllerServiceAccount == "" {
		c.ControllerServiceAccount = convention.ControllerServiceAccount
	}
	if c.PVCName == nil {
		c.PVCName = convention.PVCName
	}
	if c.GCAttempts <= 0 {
		c.GCAttempts = 3
	}
	if c.GCResources.Requests == nil && c.GCResources.Limits == nil {
		c.GCResources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		}
	}
	if c.GCTimeout <= 0 {
		c.GCTimeout = 10 * time.Minute
	}
	if c.ImagePullGracePeriod <= 0 {
		c.ImagePullGracePeriod = 2 * time.Minute
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 10 * time.Second
	}
	if c.MaxRetryBackoff <= 0 {
		c.MaxRetryBackoff = 5 * time.Minute
	}
	if c.RunningReportDelay == 0 {
		c.RunningReportDelay = time.Second
	}
	if c.MaxRunningReportDelay == 0 {
		c.MaxRunningReportDelay = 5 * time.Second
	}
	if c.WaitInterval <= 0 {
		c.WaitInterval = 5 * time.Second
	}
	if c.MissingGracePeriod <= 0 {
		c.MissingGracePeriod = 30 * time.Second
	}
	if c.MaxConcurrentReconciles <= 0 {
		c.MaxConcurrentReconciles = 32
	}
	if c.Outbound == nil {
		c.Outbound, _ = netguard.New(netguard.Policy{}) // an empty policy always parses
	}
	if c.HTTPClient == nil {
		c.HTTPClient = c.Outbound.Client(10 * time.Second)
	}
	if c.SlackAPIURL == "" {
		c.SlackAPIURL = notify.DefaultSlackAPIURL
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.LogTimeout <= 0 {
		c.LogTimeout = 30 * time.Second
	}
	if c.LogMaxBytes <= 0 {
		c.LogMaxBytes = runlogs.DefaultMaxBytes
	}
	return c
}

// podBuilder is the stage Pod builder of c, which has its defaults.
func (c Config) podBuilder() podbuild.Builder {
	return podbuild.Builder{
		ResolverImages:         c.ResolverImages,
		DefaultResolverImage:   c.DefaultResolverImage,
		CoordinatorImage:       c.CoordinatorImage,
		DindImage:              c.DindImage,
		DindBip:                c.DindBip,
		DindInsecureRegistries: c.DindInsecureRegistries,
		ServiceAccount:         c.ServiceAccount,
		IgnorePersistence:      c.IgnorePersistence,
	}
}

// retryBackoff is the wait before attempt next (2, 3, ...) of a stage.
func (c Config) retryBackoff(next int32) time.Duration {
	d := c.RetryBackoff
	for i := int32(2); i < next && d < c.MaxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxRetryBackoff)
}

// Tenant is the tenant owning a namespace of the control cluster: the
// namespace name without Cyclone's "cyclone-" prefix.
func Tenant(namespace string) string {
	tenant, _ := convention.TenantOf(namespace) // the namespace itself when it has no prefix
	return tenant
}
