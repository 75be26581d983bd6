package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/clusters"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/runlogs"
)

// LogSourceHeader says where a stage log came from: "live" (the Pod's
// pods/log, followed), "stored" (kept after the Pod was removed) or
// "none".
const LogSourceHeader = "X-Gyre-Log-Source"

// Sidecars of a stage Pod that run until the Pod is removed: following
// their logs would wait for GC.
var sidecars = map[string]bool{"csc-co": true, "csc-dind": true}

// stageLog streams a stage's log as text: followed from its Pod while the
// Pod exists, else the one kept after it was removed. The viewer needs
// only the right to get the run, as for `gyre logs`' kept logs; the
// controller reads pods/log with its own rights, on whichever cluster the
// run executes.
func (s *Server) stageLog(w http.ResponseWriter, r *http.Request, v *viewer) {
	ns, name, stage := r.PathValue("namespace"), r.PathValue("name"), r.PathValue("stage")
	ok, err := v.may(r.Context(), cycloneGroup, "workflowruns", ns, name)
	if err != nil {
		logError(w, r, err, "checking your access to the run", http.StatusInternalServerError)
		return
	}
	if !ok {
		http.Error(w, fmt.Sprintf("forbidden: you may not get workflowruns %s in namespace %s", name, ns), http.StatusForbidden)
		return
	}
	run := &cyclonev1alpha1.WorkflowRun{}
	if err := s.reader.Get(r.Context(), types.NamespacedName{Namespace: ns, Name: name}, run); err != nil {
		if apierrors.IsNotFound(err) {
			http.Error(w, "no such run", http.StatusNotFound)
			return
		}
		logError(w, r, err, "reading the run", http.StatusInternalServerError)
		return
	}
	st := run.Status.Stages[stage]
	if st == nil {
		http.Error(w, "no such stage", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if st.Pod != nil {
		pod, pods, err := s.livePod(r.Context(), run, stage, st.Pod)
		if err != nil {
			// An execution cluster out of reach still leaves the kept log.
			logFrom(r).Error(err, "Reading a stage's Pod", "path", r.URL.Path)
		}
		if pod != nil {
			w.Header().Set(LogSourceHeader, "live")
			s.follow(r, &flushWriter{w: w, rc: http.NewResponseController(w)}, pods, pod)
			return
		}
	}
	s.stored(w, r, ns, name, stage)
}

// livePod returns the stage's Pod and the client of its cluster, or a nil
// Pod once it is gone or going.
func (s *Server) livePod(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, stage string, ref *cyclonev1alpha1.PodInfo) (*corev1.Pod, corev1client.PodsGetter, error) {
	pods, err := s.podsOf(ctx, run)
	if err != nil {
		return nil, nil, err
	}
	pod, err := pods.Pods(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && pod.DeletionTimestamp != nil) {
		return nil, pods, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get pod %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	if !belongs(pod, run, stage) {
		return nil, pods, nil
	}
	return pod, pods, nil
}

// belongs says whether pod is one the engine made for the stage of run.
// The controller reads the log with its own rights, so a run's status
// must not be able to point it at another Pod: another tenant's, or the
// cluster's own.
func belongs(pod *corev1.Pod, run *cyclonev1alpha1.WorkflowRun, stage string) bool {
	return pod.Labels[convention.LabelManagedBy] == convention.ManagedByExec &&
		pod.Labels[convention.LabelRunUID] == string(run.UID) &&
		pod.Annotations[convention.AnnotationRun] == run.Namespace+"/"+run.Name &&
		pod.Annotations[convention.AnnotationStage] == stage
}

// podsOf is the Pods client of the cluster the run executes on. Remote
// credentials are read from the API server on each call, never cached.
func (s *Server) podsOf(ctx context.Context, run *cyclonev1alpha1.WorkflowRun) (corev1client.PodsGetter, error) {
	if run.Spec.ExecutionContext == nil || run.Spec.ExecutionContext.Cluster == "" {
		return s.clientset.CoreV1(), nil
	}
	name := run.Spec.ExecutionContext.Cluster
	ec := &cyclonev1alpha1.ExecutionCluster{}
	if err := s.secrets.Get(ctx, types.NamespacedName{Name: name}, ec); err != nil {
		return nil, fmt.Errorf("get execution cluster %s: %w", name, err)
	}
	cfg, _, err := clusters.Config(ctx, s.secrets, ec)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("execution cluster %s: %w", name, err)
	}
	return cs.CoreV1(), nil
}

// follow copies each started container's log, init containers first,
// following each in turn but gyre's long-running sidecars.
func (s *Server) follow(r *http.Request, w io.Writer, pods corev1client.PodsGetter, pod *corev1.Pod) {
	containers := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range containers {
		if len(containers) > 1 {
			fmt.Fprintf(w, "==> %s <==\n", c.Name)
		}
		rc, err := pods.Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: c.Name, Follow: !sidecars[c.Name]}).Stream(r.Context())
		if apierrors.IsBadRequest(err) {
			continue // not started yet, or never will
		}
		if err != nil {
			logError(w, r, fmt.Errorf("read log of pod %s/%s container %s: %w", pod.Namespace, pod.Name, c.Name, err), "reading a live log", 0)
			return
		}
		_, err = io.Copy(w, rc)
		rc.Close()
		if err != nil {
			return // the viewer left
		}
	}
}

// stored copies the log kept of the stage's latest attempt.
func (s *Server) stored(w http.ResponseWriter, r *http.Request, ns, run, stage string) {
	var keys []runlogs.Key
	if s.o.Logs != nil {
		all, err := s.o.Logs.List(r.Context(), ns, run)
		if err != nil {
			logError(w, r, err, "listing kept logs", http.StatusInternalServerError)
			return
		}
		keys = runlogs.Select(all, stage, "", "")
	}
	if len(keys) == 0 {
		w.Header().Set(LogSourceHeader, "none")
		return
	}
	w.Header().Set(LogSourceHeader, "stored")
	for _, k := range keys {
		if len(keys) > 1 {
			fmt.Fprintf(w, "==> %s <==\n", k.Container)
		}
		rc, err := s.o.Logs.Open(r.Context(), k)
		if errors.Is(err, runlogs.ErrNotFound) {
			continue // removed with its run since the listing
		}
		if err != nil {
			logError(w, r, err, "opening a kept log", 0)
			return
		}
		_, err = io.Copy(w, rc)
		rc.Close()
		if err != nil {
			return
		}
	}
}

// logError logs err and, with a status, answers it with what failed
// only; with status 0 the answer has begun, and a line in it says so.
func logError(w io.Writer, r *http.Request, err error, doing string, status int) {
	logFrom(r).Error(err, "Serving a stage log", "path", r.URL.Path)
	if hw, ok := w.(http.ResponseWriter); ok && status != 0 {
		http.Error(hw, "failed "+doing, status)
		return
	}
	fmt.Fprintf(w, "\n[gyre: failed %s]\n", doing)
}

// flushWriter sends every write at once, so that a followed log reaches
// the page line by line.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		_ = f.rc.Flush()
	}
	return n, err
}
