package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gyreops/gyre/internal/convention"
)

// PublishArtifact moves an output artifact from the attempt's staging
// directory to where later stages mount it, both under data (the run's
// data directory). Both are on one volume, so the move is a rename: no
// byte is copied, and a later stage sees either the old artifact or the
// whole new one. An artifact published by an earlier attempt of the stage
// is replaced.
func PublishArtifact(data, pod, stage, artifact string) error {
	src := filepath.Join(data, convention.StagingDir(pod), artifact)
	dst := filepath.Join(data, convention.ArtifactDir(stage, artifact))
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// kubelet creates a subPath mount's directory, so this
			// means the Pod was not built by this version of gyre.
			return fmt.Errorf("output artifact %s of stage %s: %s does not exist", artifact, stage, src)
		}
		return fmt.Errorf("output artifact %s of stage %s: %w", artifact, stage, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("output artifact %s of stage %s: %w", artifact, stage, err)
	}
	old := filepath.Join(data, convention.StagingDir(pod), ".replaced-"+artifact)
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("output artifact %s of stage %s: set aside the earlier attempt's: %w", artifact, stage, err)
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("output artifact %s of stage %s: publish: %w", artifact, stage, err)
	}
	// The staging directory is removed with the run's data anyway.
	_ = os.RemoveAll(old)
	return nil
}
