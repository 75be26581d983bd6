package runlogs

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

var ctx = context.Background()

func key(stage string, attempt int32, container string) Key {
	return Key{Namespace: "cyclone-t", Run: "run-1", Stage: stage, Attempt: attempt, Container: container}
}

func read(g Gomega, s Store, k Key) string {
	rc, err := s.Open(ctx, k)
	g.Expect(err).NotTo(HaveOccurred())
	defer rc.Close()
	b, err := io.ReadAll(rc)
	g.Expect(err).NotTo(HaveOccurred())
	return string(b)
}

func TestDir_keepsAttemptsAndContainersApart(t *testing.T) {
	g := NewWithT(t)
	d := &Dir{Root: t.TempDir()}
	for _, k := range []Key{key("build", 1, "main"), key("build", 2, "main"), key("build", 2, "resolve-source"), key("test", 1, "main")} {
		g.Expect(d.Write(ctx, k, strings.NewReader("log of "+k.String()+"\n"))).To(Succeed())
	}
	keys, err := d.List(ctx, "cyclone-t", "run-1")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(keys).To(Equal([]Key{key("build", 1, "main"), key("build", 2, "main"), key("build", 2, "resolve-source"), key("test", 1, "main")}))
	g.Expect(read(g, d, key("build", 2, "resolve-source"))).To(Equal("log of cyclone-t/run-1/build/2/resolve-source\n"))

	raw, err := os.ReadFile(filepath.Join(d.Root, "cyclone-t", "run-1", "build", "2", "main.log.gz"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(raw[:2]).To(Equal([]byte{0x1f, 0x8b}), "stored gzip-compressed")

	g.Expect(d.DeleteRun(ctx, "cyclone-t", "run-1")).To(Succeed())
	keys, err = d.List(ctx, "cyclone-t", "run-1")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(keys).To(BeEmpty())
	_, err = d.Open(ctx, key("build", 1, "main"))
	g.Expect(errors.Is(err, ErrNotFound)).To(BeTrue(), "%v", err)
	g.Expect(d.DeleteRun(ctx, "cyclone-t", "run-1")).To(Succeed(), "deleting a run with no logs is no error")
}

func TestDir_refusesNamesThatLeaveItsDirectory(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  Key
	}{
		{"A namespace that climbs up is refused.", Key{Namespace: "..", Run: "r", Stage: "s", Attempt: 1, Container: "c"}},
		{"A run with a slash is refused.", Key{Namespace: "n", Run: "../../etc", Stage: "s", Attempt: 1, Container: "c"}},
		{"A stage of dots is refused.", Key{Namespace: "n", Run: "r", Stage: "a..b", Attempt: 1, Container: "c"}},
		{"An absolute container name is refused.", Key{Namespace: "n", Run: "r", Stage: "s", Attempt: 1, Container: "/etc/passwd"}},
		{"An empty name is refused.", Key{Namespace: "n", Run: "", Stage: "s", Attempt: 1, Container: "c"}},
		{"Attempt zero is refused.", Key{Namespace: "n", Run: "r", Stage: "s", Attempt: 0, Container: "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			root := filepath.Join(t.TempDir(), "logs")
			d := &Dir{Root: root}
			g.Expect(d.Write(ctx, tc.key, strings.NewReader("secret"))).NotTo(Succeed())
			_, err := d.Open(ctx, tc.key)
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.Is(err, ErrNotFound)).To(BeFalse())
			_, err = os.Stat(filepath.Dir(root))
			g.Expect(err).NotTo(HaveOccurred())
			entries, _ := os.ReadDir(filepath.Dir(root))
			g.Expect(len(entries)).To(BeNumerically("<=", 1), "nothing written beside the store")
		})
	}
	g := NewWithT(t)
	d := &Dir{Root: t.TempDir()}
	_, err := d.List(ctx, "..", "x")
	g.Expect(err).To(HaveOccurred())
	g.Expect(d.DeleteRun(ctx, "n", "..")).NotTo(Succeed(), "DeleteRun never removes the store's parent")
}

func TestDir_truncatesALogPastItsCap(t *testing.T) {
	for _, tc := range []struct {
		name, log, want string
	}{
		{"A log under the cap is kept whole.", "0123456789", "0123456789"},
		{"A log exactly at the cap is kept whole, with no marker.", "0123456789abcdef", "0123456789abcdef"},
		{"A log past the cap is cut and says so.", "0123456789abcdefXYZ", "0123456789abcdef\n[gyre: log truncated at 16 bytes]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			d := &Dir{Root: t.TempDir(), MaxBytes: 16}
			g.Expect(d.Write(ctx, key("s", 1, "main"), strings.NewReader(tc.log))).To(Succeed())
			g.Expect(read(g, d, key("s", 1, "main"))).To(Equal(tc.want))
		})
	}
}

// failingReader fails after some bytes, as a log stream cut by a timeout.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("stream reset")
	}
	n := min(len(p), f.n)
	for i := range n {
		p[i] = 'x'
	}
	f.n -= n
	return n, nil
}

func TestDir_writeIsAtomic(t *testing.T) {
	g := NewWithT(t)
	d := &Dir{Root: t.TempDir()}
	k := key("s", 1, "main")
	g.Expect(d.Write(ctx, k, strings.NewReader("the first log\n"))).To(Succeed())

	g.Expect(d.Write(ctx, k, &failingReader{n: 100})).NotTo(Succeed())
	g.Expect(read(g, d, k)).To(Equal("the first log\n"), "a failed write leaves the earlier log")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	g.Expect(d.Write(cancelled, k, strings.NewReader("never"))).NotTo(Succeed())
	g.Expect(read(g, d, k)).To(Equal("the first log\n"))

	dir := filepath.Dir(d.path(k))
	entries, err := os.ReadDir(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).To(HaveLen(1), "no temporary file is left behind")

	g.Expect(d.Write(ctx, k, strings.NewReader("the second log\n"))).To(Succeed())
	g.Expect(read(g, d, k)).To(Equal("the second log\n"))
}

func TestSelect(t *testing.T) {
	keys := []Key{key("build", 1, "main"), key("build", 2, "init"), key("build", 2, "main"), key("test", 1, "main")}
	for _, tc := range []struct {
		name, stage, attempt, container string
		want                            []Key
	}{
		{"Without an attempt, the latest stored one is chosen.", "build", "", "", []Key{key("build", 2, "init"), key("build", 2, "main")}},
		{"An attempt picks that attempt.", "build", "1", "", []Key{key("build", 1, "main")}},
		{"A container picks that container.", "build", "", "main", []Key{key("build", 2, "main")}},
		{"An unknown stage gives nothing.", "deploy", "", "", nil},
		{"An attempt that is not a number gives nothing.", "build", "x", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Select(keys, tc.stage, tc.attempt, tc.container)).To(Equal(tc.want))
		})
	}
}
