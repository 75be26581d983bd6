package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Names of the images a real node without a registry runs besides gyre's:
// a busybox base for workloads and GC Pods, and the Pod sandbox ("pause")
// image, which is the same layer sleeping forever.
const (
	BusyboxName = "gyre.dev/busybox:dev"
	PauseName   = "gyre.dev/pause:dev"
)

// DefaultBusybox is where Debian's busybox-static installs its binary.
const DefaultBusybox = "/bin/busybox"

// Busybox returns a base image made of a static busybox binary at
// /bin/busybox with a link in /bin for each of its applets, so `sh -c`,
// `ls` and `sleep` work, plus /tmp and the passwd and group files of root,
// nobody and gyre. cmd is its default command.
func Busybox(binary string, created time.Time, cmd ...string) (v1.Image, error) {
	if binary == "" {
		binary = DefaultBusybox
	}
	arch, err := architecture(binary)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("read busybox (install busybox-static): %w", err)
	}
	applets, err := busyboxApplets(binary)
	if err != nil {
		return nil, err
	}
	layerBytes, err := busyboxLayer(created, bin, applets)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("make busybox layer: %w", err)
	}
	ts := v1.Time{Time: created.UTC()}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: ts, CreatedBy: "gyre image", Comment: "busybox and its applets"},
	})
	if err != nil {
		return nil, fmt.Errorf("append busybox layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = ts
	cfg.OS = "linux"
	cfg.Architecture = arch
	cfg.Config = v1.Config{
		Cmd:        cmd,
		WorkingDir: "/",
		Env:        []string{"PATH=/bin"},
	}
	return mutate.ConfigFile(img, cfg)
}

// busyboxApplets asks the binary for its applets, so the links match the
// build whatever its version.
func busyboxApplets(binary string) ([]string, error) {
	out, err := exec.Command(binary, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets of %s: %w", binary, err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		// A name with a slash would put a link outside /bin.
		if a != "busybox" && !strings.Contains(a, "/") {
			applets = append(applets, a)
		}
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("busybox %s lists no applets", binary)
	}
	return applets, nil
}

func busyboxLayer(t time.Time, bin []byte, applets []string) ([]byte, error) {
	type file struct {
		name string
		mode int64
		typ  byte
		data []byte
		link string
	}
	files := []file{
		{name: "bin/", mode: 0o755, typ: tar.TypeDir},
		{name: "bin/busybox", mode: 0o755, typ: tar.TypeReg, data: bin},
		{name: "etc/", mode: 0o755, typ: tar.TypeDir},
		{name: "etc/passwd", mode: 0o644, typ: tar.TypeReg, data: []byte(fmt.Sprintf(
			"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\ngyre:x:%d:%d:gyre:/:/bin/false\n", UID, GID))},
		{name: "etc/group", mode: 0o644, typ: tar.TypeReg, data: []byte(fmt.Sprintf("root:x:0:\nnobody:x:65534:\ngyre:x:%d:\n", GID))},
		{name: "root/", mode: 0o700, typ: tar.TypeDir},
		{name: "tmp/", mode: 0o1777, typ: tar.TypeDir},
	}
	for _, a := range applets {
		files = append(files, file{name: "bin/" + a, mode: 0o777, typ: tar.TypeSymlink, link: "busybox"})
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	files = slices.CompactFunc(files, func(a, b file) bool { return a.name == b.name })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:     f.name,
			Mode:     f.mode,
			Typeflag: f.typ,
			Linkname: f.link,
			Size:     int64(len(f.data)),
			ModTime:  t.UTC(),
			Uname:    "root",
			Gname:    "root",
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("write layer entry %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("write layer entry %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer: %w", err)
	}
	return buf.Bytes(), nil
}
