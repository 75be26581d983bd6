// Command image writes gyre's container image as one tarball that
// docker load and ctr images import accept, and prints its digest.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/gyreops/gyre/internal/image"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	binary := flag.String("binary", "bin/gyre", "static gyre binary for Linux")
	out := flag.String("o", "bin/gyre-image.tar", "tarball to write")
	ref := flag.String("name", image.Name, "image name and tag in the tarball")
	certs := flag.String("ca-certs", image.DefaultCACerts, "PEM CA bundle to copy into the image")
	flag.Parse()

	created, err := sourceDate()
	if err != nil {
		return err
	}
	img, err := image.Build(image.Options{Binary: *binary, CACerts: *certs, Created: created})
	if err != nil {
		return err
	}
	if err := image.Write(*out, *ref, img); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	id, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("image id: %w", err)
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s digest %s id %s (%d MiB)\n", *out, *ref, digest, id, st.Size()>>20)
	return nil
}

// sourceDate returns SOURCE_DATE_EPOCH (reproducible-builds.org) as the
// image's time, or the Unix epoch when it is unset.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a number of seconds", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}
