package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// Resolver pulls a Resource into a stage Pod or pushes one out of it, as
// Cyclone's resolver images do: the resource's data is "data/" of the
// working directory, and its parameters are environment variables.
type Resolver struct {
	// Type is the Resource's type: Git, Http or General.
	Type string
	// Workdir is the working directory (convention.HelperWorkspace in a Pod).
	Workdir string
	// Results is the directory of the container's result file
	// (convention.ResultsDir in a Pod); a pull records what it pulled there.
	Results string
	// Getenv reads the resource's parameters (os.Getenv in a Pod).
	Getenv func(string) string
	// HTTPClient sends Http resources. Default http.DefaultClient.
	HTTPClient *http.Client
	// PollInterval is how often a push looks for the coordinator's notify
	// file. Default 1 second.
	PollInterval time.Duration
}

// Pull policies a persistent resource may have. IfNotPresent is the
// spelling Cyclone's Git resolver reads; both mean the same.
const (
	pullAlways       = string(cyclonev1alpha1.PullAlways)
	pullIfNotExist   = string(cyclonev1alpha1.PullIfNotExist)
	pullIfNotPresent = "IfNotPresent"
)

// Pull fills "data/" of the working directory.
//
// A resource of the run (no pull policy) is pulled by the first stage
// that needs it and reused by the run's later stages, as in Cyclone. A
// persistent resource lives across runs: policy Always pulls it afresh,
// IfNotExist updates the data already there (a Git fetch and checkout).
// A fresh pull goes into a temporary directory first and is renamed into
// place, so a Pod stopped half-way never leaves partial data that a later
// stage would take as complete, and two stages pulling at once both end
// with complete data.
func (r *Resolver) Pull(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx)
	kind, err := r.kind()
	if err != nil {
		return err
	}
	data := filepath.Join(r.Workdir, "data")
	policy := r.Getenv(convention.EnvPullPolicy)
	exists, err := dirExists(data)
	if err != nil {
		return err
	}
	switch {
	case policy != "" && policy != pullAlways && policy != pullIfNotExist && policy != pullIfNotPresent:
		return fmt.Errorf("%s %q is not a pull policy: use %s or %s", convention.EnvPullPolicy, policy, pullAlways, pullIfNotExist)
	case exists && policy == "":
		log.Info("Reusing the data an earlier stage of the run pulled", "dir", data)
	case exists && policy != pullAlways:
		log.Info("Updating the persistent data", "dir", data)
		if err := kind.update(ctx, data); err != nil {
			return err
		}
	default:
		log.Info("Pulling", "type", r.Type, "dir", data)
		if err := r.freshPull(ctx, kind, data, exists); err != nil {
			return err
		}
	}
	results, err := kind.results(data)
	if err != nil {
		return err
	}
	return writeResults(r.Results, results)
}

// freshPull pulls into a temporary directory beside data and renames it
// into place, replacing the old data when replace is set.
func (r *Resolver) freshPull(ctx context.Context, kind resourceKind, data string, replace bool) error {
	tmp, err := os.MkdirTemp(r.Workdir, ".pull-")
	if errors.Is(err, fs.ErrPermission) {
		// The kubelet makes a PVC's sub-directories with the mode of its
		// root: storage that neither applies fsGroup nor makes its
		// volumes world-writable leaves them to root alone.
		return fmt.Errorf("pull: %w: the tenant's PVC is not writable by uid %d or gid %d; use storage that applies the Pod's fsGroup, "+
			"or makes volume directories writable to all (as local-path and NFS provisioners do)", err, os.Getuid(), os.Getgid())
	}
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := kind.fetch(ctx, tmp); err != nil {
		return err
	}
	if replace {
		old, err := os.MkdirTemp(r.Workdir, ".old-")
		if err != nil {
			return fmt.Errorf("pull: %w", err)
		}
		defer os.RemoveAll(old)
		if err := os.Rename(data, filepath.Join(old, "data")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pull: set the old data aside: %w", err)
		}
	}
	if err := os.Rename(tmp, data); err != nil {
		// Another stage of the run renamed its complete pull into place
		// first: use that one.
		if exists, _ := dirExists(data); exists && !replace {
			return nil
		}
		return fmt.Errorf("pull: move the data into place: %w", err)
	}
	return nil
}

// Push waits for the coordinator to say the workload succeeded, then
// pushes "data/". A failed workload leaves nothing to push: Push returns
// nil, so that the stage's failure is the workload's.
func (r *Resolver) Push(ctx context.Context) error {
	kind, err := r.kind()
	if err != nil {
		return err
	}
	ok, reason, err := r.waitNotify(ctx)
	if err != nil {
		return err
	}
	if !ok {
		ctrl.LoggerFrom(ctx).Info("Not pushing: the workload failed", "reason", reason)
		return nil
	}
	return kind.push(ctx, filepath.Join(r.Workdir, "data"))
}

// waitNotify waits for the coordinator's notify file.
func (r *Resolver) waitNotify(ctx context.Context) (ok bool, reason string, err error) {
	dir := filepath.Join(r.Workdir, "notify")
	interval := r.PollInterval
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := os.Stat(filepath.Join(dir, convention.NotifyOK)); err == nil {
			return true, "", nil
		}
		if b, err := os.ReadFile(filepath.Join(dir, convention.NotifyFailed)); err == nil {
			return false, string(b), nil
		}
		select {
		case <-ctx.Done():
			return false, "", fmt.Errorf("wait for the workload to finish: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// resourceKind is what a resource type knows how to do.
type resourceKind interface {
	// fetch pulls the resource into the empty directory dir.
	fetch(ctx context.Context, dir string) error
	// update brings the data already in dir up to date.
	update(ctx context.Context, dir string) error
	// results are the key-values a pull reports about the data in dir.
	results(dir string) ([]string, error)
	// push sends the data in dir.
	push(ctx context.Context, dir string) error
}

func (r *Resolver) kind() (resourceKind, error) {
	switch r.Type {
	case cyclonev1alpha1.GitResourceType:
		return newGitResource(r.Getenv)
	case cyclonev1alpha1.HTTPResourceType:
		return newHTTPResource(r.Getenv, r.HTTPClient)
	case generalResourceType:
		return generalResource{}, nil
	}
	return nil, fmt.Errorf("gyre has no resolver for resource type %q (it resolves %s, %s and %s): set the Resource's spec.resolver to an image that resolves it",
		r.Type, cyclonev1alpha1.GitResourceType, cyclonev1alpha1.HTTPResourceType, generalResourceType)
}

// writeResults writes "<key>:<value>" lines to the result file.
func writeResults(dir string, lines []string) error {
	if len(lines) == 0 || dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, convention.ResultFile), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func dirExists(p string) (bool, error) {
	info, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case !info.IsDir():
		return false, fmt.Errorf("%s exists and is not a directory", p)
	}
	return true, nil
}
