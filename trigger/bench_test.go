package trigger

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// BenchmarkCronReconciler_thousandTriggersInOneMinute measures how long it
// takes to start the runs of 1,000 per-minute triggers that all fire in
// the same minute. One op is one such minute: 1,000 reconciles, 1,000 new
// runs. Workers stand for the controller's MaxConcurrentReconciles.
func BenchmarkCronReconciler_thousandTriggersInOneMinute(b *testing.B) {
	const triggers = 1000
	for _, workers := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			ns := newNamespace(b)
			ctx := context.Background()
			names := make([]string, triggers)
			var latest time.Time
			var mu sync.Mutex
			parallel(triggers, 32, func(i int) error {
				trig := &cyclonev1alpha1.WorkflowTrigger{
					ObjectMeta: metav1.ObjectMeta{Name: "minutely-" + strconv.Itoa(i), Namespace: ns},
					Spec: cyclonev1alpha1.WorkflowTriggerSpec{
						Type:            cyclonev1alpha1.TriggerTypeCron,
						Cron:            cyclonev1alpha1.CronTrigger{Schedule: "* * * * *"},
						WorkflowRunSpec: cyclonev1alpha1.WorkflowRunSpec{WorkflowRef: &corev1.ObjectReference{Name: "build"}},
					},
				}
				if err := k8sClient.Create(ctx, trig); err != nil {
					b.Error(err)
					return err
				}
				names[i] = trig.Name
				mu.Lock()
				if trig.CreationTimestamp.After(latest) {
					latest = trig.CreationTimestamp.Time
				}
				mu.Unlock()
				return nil
			})
			clk := clocktesting.NewFakeClock(latest.Truncate(time.Minute).Add(time.Minute))
			// Triggers come from an informer cache, as in the controller.
			cached := cachedClient(b, ns)
			r := &CronReconciler{Client: cached, APIReader: k8sClient, Clock: clk}
			minute := func() {
				parallel(triggers, workers, func(i int) error {
					_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: names[i]}})
					if err != nil {
						b.Error(err)
					}
					return err
				})
			}
			minute() // the first minute writes every ledger

			rounds := 0
			for b.Loop() {
				clk.Step(time.Minute)
				minute()
				rounds++
			}
			b.StopTimer()
			var runs cyclonev1alpha1.WorkflowRunList
			if err := k8sClient.List(ctx, &runs, client.InNamespace(ns)); err != nil {
				b.Fatal(err)
			}
			if want := triggers * (rounds + 1); len(runs.Items) != want {
				b.Fatalf("%d runs, want %d", len(runs.Items), want)
			}
			b.ReportMetric(float64(triggers*rounds)/b.Elapsed().Seconds(), "runs/s")
		})
	}
}

// BenchmarkWebhookServer_loopback measures signed GitHub push deliveries
// handled per second over HTTP on 127.0.0.1: new deliveries that each
// start a run, replays of one delivery, and deliveries with a wrong
// signature.
func BenchmarkWebhookServer_loopback(b *testing.B) {
	for _, mode := range []string{"new", "replay", "refused"} {
		b.Run(mode, func(b *testing.B) {
			ns := newNamespace(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := k8sClient.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "scm-demo", Namespace: ns},
				Data:       map[string][]byte{SecretKey: []byte(demoSecret)},
			}); err != nil {
				b.Fatal(err)
			}
			if err := k8sClient.Create(ctx, &cyclonev1alpha1.WorkflowTrigger{
				ObjectMeta: metav1.ObjectMeta{Name: "build", Namespace: ns},
				Spec: cyclonev1alpha1.WorkflowTriggerSpec{
					Type: cyclonev1alpha1.TriggerTypeSCM,
					SCM: cyclonev1alpha1.SCMTrigger{Secret: "scm-demo", Repo: "gyreops/demo", SCMTriggerPolicy: cyclonev1alpha1.SCMTriggerPolicy{
						Push: cyclonev1alpha1.SCMTriggerPush{SCMTriggerBasic: cyclonev1alpha1.SCMTriggerBasic{Enabled: true}},
					}},
					WorkflowRunSpec: cyclonev1alpha1.WorkflowRunSpec{WorkflowRef: &corev1.ObjectReference{Name: "build"}},
				},
			}); err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			// Triggers come from an informer cache, as in the controller.
			srv := NewWebhookServer(cachedClient(b, ns), WebhookOptions{APIReader: k8sClient})
			go func() { _ = srv.Serve(ctx, ln) }()
			url := "http://" + ln.Addr().String() + WebhookPath + ns
			httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

			body := readPayload(b, "github-push.json")
			sign := githubSignature(demoSecret, body)
			want := http.StatusAccepted
			if mode == "refused" {
				sign, want = githubSignature("wrong", body), http.StatusUnauthorized
			}
			var seq atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id, body, sign := "replayed", body, sign
					var n int64
					if mode != "replay" {
						n = seq.Add(1)
						id = "bench-" + strconv.FormatInt(n, 10)
					}
					if mode == "new" {
						// A new delivery of the same commit is a replay: a
						// new run needs a commit of its own.
						body = bytes.ReplaceAll(body, []byte(benchSHA), fmt.Appendf(nil, "%040d", n))
						sign = githubSignature(demoSecret, body)
					}
					req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
					req.Header.Set("X-GitHub-Event", "push")
					req.Header.Set("X-GitHub-Delivery", id)
					req.Header.Set("X-Hub-Signature-256", sign)
					resp, err := httpClient.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != want {
						b.Errorf("status %d, want %d", resp.StatusCode, want)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// benchSHA is the commit of github-push.json.
const benchSHA = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"

// parallel calls f for 0..n-1 on at most workers goroutines.
func parallel(n, workers int, f func(i int) error) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				_ = f(i)
			}
		})
	}
	wg.Wait()
}

// cachedClient is a client that reads from an informer cache of ns and
// writes to the API server, as a manager's client does.
func cachedClient(b *testing.B, ns string) client.Client {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	informers, err := cache.New(restCfg, cache.Options{Scheme: scheme, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := informers.GetInformer(ctx, &cyclonev1alpha1.WorkflowTrigger{}); err != nil {
		b.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		b.Fatal("trigger cache does not sync")
	}
	c, err := client.New(restCfg, client.Options{Scheme: scheme, Cache: &client.CacheOptions{Reader: informers}})
	if err != nil {
		b.Fatal(err)
	}
	return c
}
