package fsutil

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

func TestCopyTree(t *testing.T) {
	g := NewWithT(t)
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	g.Expect(os.MkdirAll(filepath.Join(src, "bin"), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(src, "bin", "app"), []byte("#!/bin/sh\n"), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(src, "README"), []byte("hello\n"), 0o644)).To(Succeed())
	g.Expect(os.Symlink("bin/app", filepath.Join(src, "app"))).To(Succeed())

	g.Expect(CopyTree(src, dst)).To(Succeed())
	g.Expect(os.ReadFile(filepath.Join(dst, "README"))).To(Equal([]byte("hello\n")))
	info, err := os.Stat(filepath.Join(dst, "bin", "app"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o755)), "an executable stays executable")
	g.Expect(os.Readlink(filepath.Join(dst, "app"))).To(Equal("bin/app"), "a link stays a link")

	file := filepath.Join(t.TempDir(), "one")
	g.Expect(CopyTree(filepath.Join(src, "README"), file)).To(Succeed())
	g.Expect(os.ReadFile(file)).To(Equal([]byte("hello\n")), "a single file is copied as a file")

	g.Expect(CopyTree(filepath.Join(src, "nope"), filepath.Join(t.TempDir(), "x"))).To(MatchError(ContainSubstring("nope does not exist")))
}

func TestWriteFile_createsTheDirectoriesOnTheWay(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "c.yaml")
	if err := WriteFile(p, []byte("x: 1\n")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "x: 1\n" {
		t.Fatalf("read back %q, %v", got, err)
	}
	if err := WriteFile(filepath.Join(p, "under-a-file"), nil); err == nil {
		t.Fatal("writing under a regular file succeeded")
	}
}
