package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/render"
	"github.com/gyreops/gyre/source"
)

// ErrArtifactUnavailable is returned by an Artifacts for a Repository
// whose current artifact is not on disk (not fetched yet, or the cache
// was lost). The Tenant waits for the Repository.
var ErrArtifactUnavailable = errors.New("artifact unavailable")

// Artifacts finds the checked-out files of a Repository's current
// artifact. The tenant reconciler declares only this of the source side.
type Artifacts interface {
	// ArtifactDir returns the directory holding repo.Status.Artifact.
	ArtifactDir(repo *gyrev1alpha1.Repository) (string, error)
}

// Renderer renders one target of a checked-out repository; a
// *render.Renderer is one.
type Renderer interface {
	Render(ctx context.Context, root string, t render.Target, opts render.Options) (*render.Result, error)
}

// StoreArtifacts finds artifacts in the source.Store the Repository
// reconciler checks them out into, named after the Repository.
type StoreArtifacts struct {
	Store source.Store
}

// ArtifactDir returns <store>/<repository>/<commit>[-<ignore hash>].
func (s StoreArtifacts) ArtifactDir(repo *gyrev1alpha1.Repository) (string, error) {
	art := repo.Status.Artifact
	if art == nil {
		return "", fmt.Errorf("repository %s: %w: no artifact yet", repo.Name, ErrArtifactUnavailable)
	}
	commit := source.CommitOf(art.Revision)
	if commit == "" {
		return "", fmt.Errorf("repository %s: %w: revision %q names no commit", repo.Name, ErrArtifactUnavailable, art.Revision)
	}
	ignore := ""
	if repo.Spec.Ignore != nil {
		ignore = *repo.Spec.Ignore
	}
	dir := s.Store.Dir(repo.Name, commit, ignore)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("repository %s: %w: %s not checked out", repo.Name, ErrArtifactUnavailable, art.Revision)
	}
	return dir, nil
}

// renderLimits maps a Repository's spec.limits to render's; unset fields
// take render's defaults, the same as the API's.
func renderLimits(repo *gyrev1alpha1.Repository) render.Limits {
	var l render.Limits
	s := repo.Spec.Limits
	if s == nil {
		return l
	}
	if s.MaxRenderBytes != nil {
		l.MaxBytes = s.MaxRenderBytes.Value()
	}
	if s.MaxObjects != nil {
		l.MaxObjects = *s.MaxObjects
	}
	if s.RenderTimeout != nil {
		l.Timeout = s.RenderTimeout.Duration
	}
	return l
}
