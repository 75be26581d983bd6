package source

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/gitserver"
)

// TestGit_sshIgnoresSSHConfig: an ssh_config in the controller's home
// that points the remote's host elsewhere does not move the connection;
// the fetch reaches the host the URL names.
//
// go-git's ssh_config reader finds the home directory once per process,
// from the password database rather than $HOME, so the test runs itself
// again: as a user the database does not list, in a user namespace, with
// HOME holding the config. Then $HOME is the home directory the reader
// falls back to.
func TestGit_sshIgnoresSSHConfig(t *testing.T) {
	const child = "GYRE_TEST_SSH_CONFIG_CHILD"
	if os.Getenv(child) == "" {
		home := t.TempDir()
		if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
			t.Fatal(err)
		}
		config := "Host 127.0.0.1\n  Hostname 192.0.2.1\n"
		if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestGit_sshIgnoresSSHConfig$", "-test.count=1")
		cmd.Env = append(os.Environ(), child+"=1", "HOME="+home)
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 424242, HostID: os.Getuid(), Size: 1}},
		}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Skipf("cannot start a process in a user namespace: %v", err)
		}
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}

	g := NewWithT(t)
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "app.git")
	repo.WriteFile("README.md", "over ssh\n")
	repo.Commit("first")
	repo.Push()
	key := newSSHKey(t, "")
	srv, err := gitserver.StartSSH(root, key.pub)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)

	// The redirected dial goes nowhere; end it rather than wait on it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	git := &Git{CacheDir: t.TempDir()}
	auth := &Auth{Identity: key.pem, KnownHosts: srv.KnownHosts()}
	_, _, err = git.Fetch(ctx, Request{URL: srv.URL("app.git"), Auth: auth}, nil)
	g.Expect(err).NotTo(HaveOccurred())
}
