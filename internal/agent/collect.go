package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gyreops/gyre/internal/fsutil"
)

// Artifact is an output artifact that a workload leaves at Path: a file
// or a directory, as in Cyclone.
type Artifact struct {
	Name string
	Path string
}

// Collector runs a workload container's command and then collects its
// output artifacts. Cyclone copies an artifact out of the finished
// container with the Docker API; a Pod offers nothing like it, so gyre's
// stage Pods start the workload's command through this, from a copy of
// the gyre binary the Pod installs for it. That keeps an artifact's path
// free for the workload to write a file or a directory there, which a
// volume mounted at the path would not.
type Collector struct {
	// Artifacts to collect once the command has succeeded.
	Artifacts []Artifact
	// Staging is the attempt's staging directory: an artifact goes to
	// "<Staging>/<name>/<base name of its path>", where the coordinator
	// publishes it from.
	Staging string
	// Stdin, Stdout and Stderr are the command's; Stderr also gets the
	// collector's own messages.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Run runs argv, passing ctx's end on to it as SIGTERM, and returns the
// exit code the container must end with: the command's own when it
// failed, 127 when it could not start, 1 when an artifact could not be
// collected, else 0.
func (c *Collector) Run(ctx context.Context, argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(c.Stderr, "gyre collect: no command to run")
		return 127
	}
	cmd := osexec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.Stdin, c.Stdout, c.Stderr
	// The kubelet's SIGTERM reaches gyre, the container's first process;
	// the workload gets it too and the grace period to end in.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Hour
	err := cmd.Run()
	var exit *osexec.ExitError
	switch {
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	case err != nil:
		fmt.Fprintf(c.Stderr, "gyre collect: %v\n", err)
		return 127
	}
	for _, a := range c.Artifacts {
		dst := filepath.Join(c.Staging, a.Name, filepath.Base(a.Path))
		if err := collect(a.Path, dst); err != nil {
			fmt.Fprintf(c.Stderr, "gyre collect: output artifact %s: %v\n", a.Name, err)
			return 1
		}
	}
	return 0
}

// collect copies the file or directory src to dst, replacing whatever an
// earlier try left there.
func collect(src, dst string) error {
	if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: the workload wrote nothing there", src)
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	// The coordinator, which runs as another user than the workload may,
	// moves this directory to publish the artifact: moving a directory
	// to another parent needs write access to it. The stage Pod's
	// fsGroup would make its group the coordinator's, but the kubelet
	// applies fsGroup only to volumes that support ownership: on
	// hostPath, local and NFS volumes (local-path-provisioner's, kind's)
	// a root workload's directory stays root's. So anyone may write it;
	// it lives on the tenant's own volume, which only its Pods mount.
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	return fsutil.CopyTree(src, dst)
}

// InstallSelf copies the running gyre binary to dst, for the workload
// containers of the Pod to run as "gyre collect".
func InstallSelf(dst string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return fsutil.CopyFile(self, dst, 0o755)
}
