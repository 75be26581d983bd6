package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestCollector(t *testing.T) {
	sh := func(script string) []string { return []string{"/bin/sh", "-c", script} }
	tests := []struct {
		name      string
		script    string
		artifacts []string // name=path, path relative to the work directory
		wantCode  int
		wantFiles map[string]string // under staging
		wantErr   string
	}{
		{name: "A file artifact is collected as the file the workload wrote.",
			script:    "echo 'mode: set' > coverage.out",
			artifacts: []string{"coverage=coverage.out"},
			wantFiles: map[string]string{"coverage/coverage.out": "mode: set\n"}},
		{name: "A directory artifact is collected whole.",
			script:    "mkdir -p out/bin && echo app > out/bin/app && echo lib > out/lib",
			artifacts: []string{"dist=out"},
			wantFiles: map[string]string{"dist/out/bin/app": "app\n", "dist/out/lib": "lib\n"}},
		{name: "A failed workload keeps its exit code, and nothing is collected.",
			script:    "echo partial > coverage.out; exit 3",
			artifacts: []string{"coverage=coverage.out"},
			wantCode:  3,
			wantFiles: map[string]string{}},
		{name: "An artifact the workload did not write fails the container, saying which.",
			script:    "true",
			artifacts: []string{"coverage=coverage.out"},
			wantCode:  1,
			wantFiles: map[string]string{},
			wantErr:   "gyre collect: output artifact coverage: "},
		{name: "A command that does not exist ends with 127.",
			script:   "",
			wantCode: 127},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			work, staging := t.TempDir(), t.TempDir()
			var arts []Artifact
			for _, a := range tt.artifacts {
				name, p, _ := strings.Cut(a, "=")
				arts = append(arts, Artifact{Name: name, Path: filepath.Join(work, p)})
			}
			var stderr bytes.Buffer
			c := &Collector{Artifacts: arts, Staging: staging, Stdout: &bytes.Buffer{}, Stderr: &stderr}
			argv := sh("cd " + work + " && " + tt.script)
			if tt.script == "" {
				argv = []string{filepath.Join(work, "no-such-command")}
			}
			g.Expect(c.Run(context.Background(), argv)).To(Equal(tt.wantCode), stderr.String())
			if tt.wantFiles != nil {
				g.Expect(readTree(t, staging)).To(Equal(tt.wantFiles))
			}
			g.Expect(stderr.String()).To(ContainSubstring(tt.wantErr))
		})
	}
}

func TestCollector_replacesAnEarlierCollection(t *testing.T) {
	g := NewWithT(t)
	work, staging := t.TempDir(), t.TempDir()
	write(t, staging, "coverage/coverage.out/stale", "from a directory mount of an older gyre")
	c := &Collector{Artifacts: []Artifact{{Name: "coverage", Path: filepath.Join(work, "coverage.out")}}, Staging: staging, Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	g.Expect(c.Run(context.Background(), []string{"/bin/sh", "-c", "echo new > " + filepath.Join(work, "coverage.out")})).To(Equal(0))
	g.Expect(readTree(t, staging)).To(Equal(map[string]string{"coverage/coverage.out": "new\n"}))
}

func TestCollector_leavesArtifactsForTheCoordinatorToMove(t *testing.T) {
	g := NewWithT(t)
	work, staging := t.TempDir(), t.TempDir()
	c := &Collector{Artifacts: []Artifact{{Name: "bin", Path: filepath.Join(work, "bin")}}, Staging: staging, Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	g.Expect(c.Run(context.Background(), []string{"/bin/sh", "-c", "echo app > " + filepath.Join(work, "bin")})).To(Equal(0))
	info, err := os.Stat(filepath.Join(staging, "bin"))
	g.Expect(err).NotTo(HaveOccurred())
	// The coordinator runs as another user, in the Pod's fsGroup only
	// where the volume supports ownership.
	g.Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o777)), "writable by the coordinator, whatever the workload's umask and the volume")
}

// readTree reads every regular file under dir, by slash path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
