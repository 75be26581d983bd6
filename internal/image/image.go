package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Name is the reference of gyre's locally built image. The gyre.dev host
// serves no registry, so a node can only run it once the image is loaded
// there (imagePullPolicy IfNotPresent or Never); to run it elsewhere, push
// it under another name.
const Name = "gyre.dev/gyre:dev"

// UID and GID are the ids of the image's non-root user "gyre": 65532, as in
// distroless "nonroot", so runAsNonRoot holds without a runAsUser.
const (
	UID = 65532
	GID = 65532
)

// Paths inside the image.
const (
	BinaryPath  = "/gyre"
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
)

// DefaultCACerts is the CA bundle of Debian and Ubuntu build machines.
const DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"

// Options says what goes into the image.
type Options struct {
	// Binary is the path of a static gyre binary for Linux. Its ELF header
	// gives the image's architecture.
	Binary string
	// CACerts is the path of a PEM CA bundle; DefaultCACerts when empty.
	CACerts string
	// Created is the image's creation time and every file's mtime: fixed
	// (SOURCE_DATE_EPOCH or the Unix epoch) so two builds are identical.
	Created time.Time
}

// Build returns gyre's image: one layer holding the binary at /gyre, the
// CA bundle and the passwd and group files of user gyre, run as that user.
func Build(o Options) (v1.Image, error) {
	if o.CACerts == "" {
		o.CACerts = DefaultCACerts
	}
	arch, err := architecture(o.Binary)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("read gyre binary: %w", err)
	}
	certs, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("read CA certificates (install ca-certificates or pass another bundle): %w", err)
	}
	layerTar, err := layerTar(o.Created, bin, certs)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	created := v1.Time{Time: o.Created.UTC()}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: created, CreatedBy: "gyre image", Comment: "gyre binary, CA certificates, user gyre"},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = created
	cfg.OS = "linux"
	cfg.Architecture = arch
	cfg.Author = ""
	cfg.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{BinaryPath},
		WorkingDir: "/",
		Env: []string{
			"PATH=/",
			"SSL_CERT_FILE=" + CACertsPath,
		},
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	return img, nil
}

// architecture returns the GOARCH name of a static Linux ELF binary. A
// dynamically linked binary is refused: the image has no libc and no
// loader, so it could not start.
func architecture(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("gyre binary %s: not a Linux executable (build it with GOOS=linux CGO_ENABLED=0): %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("gyre binary %s: dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	arch, ok := map[elf.Machine]string{
		elf.EM_X86_64:  "amd64",
		elf.EM_AARCH64: "arm64",
		elf.EM_386:     "386",
		elf.EM_ARM:     "arm",
		elf.EM_PPC64:   "ppc64le",
		elf.EM_S390:    "s390x",
		elf.EM_RISCV:   "riscv64",
	}[f.Machine]
	if !ok {
		return "", fmt.Errorf("gyre binary %s: unsupported machine %s", path, f.Machine)
	}
	return arch, nil
}

// entry is one file or directory of the layer.
type entry struct {
	name string // without a leading slash, as docker save writes it
	mode int64
	data []byte
	dir  bool
}

// layerTar returns the uncompressed layer: entries sorted by name, owned
// by root, all with mtime t, so the bytes depend only on the inputs.
func layerTar(t time.Time, bin, certs []byte) ([]byte, error) {
	entries := []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\ngyre:x:%d:%d:gyre:/:/sbin/nologin\n", UID, GID))},
		{name: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\ngyre:x:%d:\n", GID))},
		{name: strings.TrimPrefix(CACertsPath, "/"), mode: 0o644, data: certs},
		{name: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, data: bin},
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			ModTime: t.UTC(),
			Uname:   "root",
			Gname:   "root",
			Format:  tar.FormatPAX,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("write layer entry %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("write layer entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer: %w", err)
	}
	return buf.Bytes(), nil
}

// Write writes img as one docker-save tarball at path, tagged ref: the
// format `docker load` and `ctr images import` both read.
func Write(path, ref string, img v1.Image) error {
	// Strict: a name without a registry or tag would be defaulted to
	// index.docker.io and "latest" when loaded.
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("write image %s: %w", path, err)
	}
	return nil
}
