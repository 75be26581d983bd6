package agent

import (
	"context"
	"fmt"
	"os"
)

// generalResourceType is the type the example pipelines give a Resource
// that is only a directory, such as a persistent build cache: Cyclone has
// no resolver of its own for it.
const generalResourceType = "General"

// generalResource is a directory with nothing to fetch or send: a pull
// makes sure it exists, and what the workload leaves in it stays (in its
// PVC when the Resource is persistent).
type generalResource struct{}

func (generalResource) fetch(_ context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("general resource: %w", err)
	}
	return nil
}

func (generalResource) update(context.Context, string) error { return nil }

func (generalResource) results(string) ([]string, error) { return nil, nil }

func (generalResource) push(context.Context, string) error { return nil }
