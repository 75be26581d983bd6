package source

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/gitserver"
)

func TestGit_limits(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name    string
		write   func(r *gitserver.Repo)
		limits  Limits
		want    string
		maxRecv int64
	}{
		{
			name: "A fetch whose pack is larger than maxArtifactBytes stops once the cap is read.",
			write: func(r *gitserver.Repo) {
				// Random data does not compress: the pack is as big as it.
				b := make([]byte, 8*mib)
				_, _ = rand.Read(b)
				r.WriteFile("big.bin", string(b))
			},
			limits:  Limits{MaxArtifactBytes: mib},
			want:    "artifact exceeds spec.limits.maxArtifactBytes (1Mi): the remote sent more than",
			maxRecv: 2 * mib,
		},
		{
			name: "A checkout of more files than maxFiles stops at the file past the cap.",
			write: func(r *gitserver.Repo) {
				for i := range 30 {
					r.WriteFile(fmt.Sprintf("f/%02d.yaml", i), "a: 1\n")
				}
			},
			limits: Limits{MaxFiles: 20},
			want:   "artifact exceeds spec.limits.maxFiles (20): more than 20 files, at f/",
		},
		{
			name: "A small pack whose objects inflate past maxArtifactBytes is refused before they are inflated.",
			write: func(r *gitserver.Repo) {
				r.WriteFile("zeros.txt", string(make([]byte, 4*mib)))
			},
			limits: Limits{MaxArtifactBytes: 2 * mib},
			want:   "artifact exceeds spec.limits.maxArtifactBytes (2Mi): the fetched objects inflate to more than",
		},
		{
			name: "One blob at many paths is refused at the path whose checkout goes past maxArtifactBytes.",
			write: func(r *gitserver.Repo) {
				b := make([]byte, mib/2)
				_, _ = rand.Read(b)
				for i := range 4 {
					r.WriteFile(fmt.Sprintf("copy%d.bin", i), string(b))
				}
			},
			limits: Limits{MaxArtifactBytes: 3 * mib / 2},
			want:   "artifact exceeds spec.limits.maxArtifactBytes (1536Ki): copy2.bin is 524288 bytes and ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t, gitserver.HTTPOptions{})
			f.repo.WriteFile("base/kustomization.yaml", "resources: []\n")
			f.repo.Commit("small")
			f.repo.Push()
			req := f.req(Ref{Branch: "main"})
			req.Limits = tt.limits
			good, _, err := f.git.Fetch(context.Background(), req, nil)
			g.Expect(err).NotTo(HaveOccurred())

			tt.write(f.repo)
			f.repo.Commit("hostile")
			f.repo.Push()
			before := f.git.PackBytes()
			_, _, err = f.git.Fetch(context.Background(), req, &good)
			received := f.git.PackBytes() - before
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
			g.Expect(ReasonOf(err)).To(Equal(LimitExceeded))
			var se *Error
			g.Expect(errors.As(err, &se)).To(BeTrue())
			g.Expect(se.Terminal()).To(BeTrue())
			g.Expect(good.Dir).To(BeADirectory(), "the last good artifact stays")
			g.Expect(artifacts(g, f.cache, "app")).To(HaveLen(1), "nothing of the hostile commit is kept")
			if tt.maxRecv > 0 {
				g.Expect(received).To(BeNumerically("<=", tt.maxRecv), "the fetch stopped reading at the cap")
				t.Logf("pack bytes read before the fetch stopped: %d (blob 8 MiB)", received)
			}
		})
	}
}
