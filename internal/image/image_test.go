package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	. "github.com/onsi/gomega"
)

// standin is a small static binary built once for every test: the image
// does not care what the binary does, and gyre's own takes minutes cold.
var standin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gyre-image-test-")
	if err != nil {
		panic(err)
	}
	standin = filepath.Join(dir, "gyre")
	cmd := exec.Command("go", "build", "-trimpath", "-o", standin, "./testdata/standin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		panic("build stand-in binary: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// writeImage builds the image from binary and writes it to a new tarball.
func writeImage(t *testing.T, binary string, created time.Time) string {
	t.Helper()
	img, err := Build(Options{Binary: binary, Created: created})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gyre-image.tar")
	if err := Write(path, Name, img); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBuild_reproducible(t *testing.T) {
	g := NewWithT(t)
	a := writeImage(t, standin, time.Unix(0, 0))
	b := writeImage(t, standin, time.Unix(0, 0))

	da, db := digest(g, a), digest(g, b)
	g.Expect(da).To(Equal(db), "two builds give the same image digest")
	ba, err := os.ReadFile(a)
	g.Expect(err).NotTo(HaveOccurred())
	bb, err := os.ReadFile(b)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ba).To(Equal(bb), "two builds give the same tarball bytes")

	c := writeImage(t, standin, time.Unix(1700000000, 0))
	g.Expect(digest(g, c)).NotTo(Equal(da), "SOURCE_DATE_EPOCH changes the image")
}

// digest reads the image of a tarball and returns its manifest digest.
func digest(g Gomega, path string) string {
	img, err := tarball.ImageFromPath(path, nil)
	g.Expect(err).NotTo(HaveOccurred())
	d, err := img.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	return d.String()
}

func TestBuild_contents(t *testing.T) {
	g := NewWithT(t)
	path := writeImage(t, standin, time.Unix(0, 0))
	tag, err := name.NewTag(Name)
	g.Expect(err).NotTo(HaveOccurred())
	img, err := tarball.ImageFromPath(path, &tag)
	g.Expect(err).NotTo(HaveOccurred(), "manifest.json names %s", Name)

	cfg, err := img.ConfigFile()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg.OS).To(Equal("linux"))
	g.Expect(cfg.Architecture).To(Equal(runtime.GOARCH))
	g.Expect(cfg.Created.Unix()).To(BeZero())
	g.Expect(cfg.Config.User).To(Equal("65532:65532"))
	g.Expect(cfg.Config.Entrypoint).To(Equal([]string{"/gyre"}))
	g.Expect(cfg.Config.WorkingDir).To(Equal("/"))

	layers, err := img.Layers()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(layers).To(HaveLen(1))
	rc, err := layers[0].Uncompressed()
	g.Expect(err).NotTo(HaveOccurred())
	defer rc.Close()

	var names []string
	files := map[string]*tar.Header{}
	data := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		g.Expect(err).NotTo(HaveOccurred())
		names = append(names, h.Name)
		files[h.Name] = h
		b, err := io.ReadAll(tr)
		g.Expect(err).NotTo(HaveOccurred())
		data[h.Name] = string(b)
	}
	g.Expect(names).NotTo(BeEmpty())
	g.Expect(isSorted(names)).To(BeTrue(), "entries are sorted: %v", names)
	for _, h := range files {
		g.Expect(h.ModTime.Unix()).To(BeZero(), "%s has the fixed mtime", h.Name)
		g.Expect(h.Uid).To(BeZero(), "%s is owned by root", h.Name)
	}

	g.Expect(files).To(HaveKey("gyre"))
	g.Expect(files["gyre"].Mode&0o111).To(Equal(int64(0o111)), "/gyre is executable by everyone")
	standinBytes, err := os.ReadFile(standin)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(data["gyre"] == string(standinBytes)).To(BeTrue(), "/gyre is the binary")

	certs, err := os.ReadFile(DefaultCACerts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(data["etc/ssl/certs/ca-certificates.crt"] == string(certs)).To(BeTrue(), "the CA bundle is the build machine's")
	g.Expect(data["etc/passwd"]).To(ContainSubstring("gyre:x:65532:65532:"))
	g.Expect(data["etc/group"]).To(ContainSubstring("gyre:x:65532:"))
	g.Expect(files).To(HaveKey("tmp/"))
	g.Expect(files["tmp/"].Mode).To(Equal(int64(0o1777)))

	manifest := readManifest(g, path)
	g.Expect(manifest).To(HaveLen(1))
	g.Expect(manifest[0].RepoTags).To(Equal([]string{Name}))
}

// isSorted reports whether names are in ascending order.
func isSorted(names []string) bool {
	for i := 1; i < len(names); i++ {
		if strings.Compare(names[i-1], names[i]) >= 0 {
			return false
		}
	}
	return true
}

// readManifest returns the manifest.json of a docker-save tarball.
func readManifest(g Gomega, path string) tarball.Manifest {
	f, err := os.Open(path)
	g.Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		g.Expect(err).NotTo(HaveOccurred(), "the tarball has a manifest.json")
		if h.Name != "manifest.json" {
			continue
		}
		var m tarball.Manifest
		g.Expect(json.NewDecoder(tr).Decode(&m)).To(Succeed())
		return m
	}
}

func TestBuild_refuses(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "gyre.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"A binary that is not a Linux executable is refused.", Options{Binary: script}, "not a Linux executable"},
		{"A missing CA bundle is named.", Options{Binary: standin, CACerts: filepath.Join(dir, "none.crt")}, "read CA certificates"},
		{"A missing binary is named.", Options{Binary: filepath.Join(dir, "none")}, "gyre binary " + filepath.Join(dir, "none")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Build(tc.opts)
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}

func TestWrite_refusesANameWithoutTag(t *testing.T) {
	g := NewWithT(t)
	img, err := Build(Options{Binary: standin})
	g.Expect(err).NotTo(HaveOccurred())
	err = Write(filepath.Join(t.TempDir(), "x.tar"), "gyre.dev/gyre", img)
	g.Expect(err).To(MatchError(ContainSubstring(`image name "gyre.dev/gyre"`)))
}

func TestBuild_gyreBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gyre")
	}
	g := NewWithT(t)
	// The flags of make build, so the Go build cache is shared with it.
	binary := filepath.Join(t.TempDir(), "gyre")
	cmd := exec.Command("go", "build", "-trimpath", "-o", binary, "../../cmd/gyre")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)

	img, err := Build(Options{Binary: binary})
	g.Expect(err).NotTo(HaveOccurred(), "gyre's binary is static")
	cfg, err := img.ConfigFile()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg.Architecture).To(Equal(runtime.GOARCH))
}
