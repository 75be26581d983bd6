package source

import (
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	. "github.com/onsi/gomega"
)

func TestListing_resolve(t *testing.T) {
	h := func(c byte) string { return string(make40(c)) }
	refs := []*plumbing.Reference{
		plumbing.NewHashReference("refs/heads/main", plumbing.NewHash(h('1'))),
		plumbing.NewHashReference("refs/tags/v1.0.0", plumbing.NewHash(h('a'))), // annotated: tag object
		plumbing.NewHashReference("refs/tags/v1.0.0^{}", plumbing.NewHash(h('2'))),
		plumbing.NewHashReference("refs/tags/1.0.0", plumbing.NewHash(h('2'))),
		plumbing.NewHashReference("refs/tags/v1.1.0+a", plumbing.NewHash(h('3'))),
		plumbing.NewHashReference("refs/tags/v1.1.0+b", plumbing.NewHash(h('4'))),
		plumbing.NewHashReference("refs/tags/not-a-version", plumbing.NewHash(h('5'))),
		plumbing.NewSymbolicReference("HEAD", "refs/heads/main"),
	}
	l := newListing(refs)
	tests := []struct {
		name     string
		ref      Ref
		want     target
		wantTied int
		wantErr  bool
	}{
		{"A branch maps to its tip.", Ref{Branch: "main"}, target{h('1'), "main", "refs/heads/main"}, 0, false},
		{"An annotated tag maps to the peeled commit.", Ref{Tag: "v1.0.0"}, target{h('2'), "v1.0.0", "refs/tags/v1.0.0"}, 0, false},
		{"Equal versions on one commit pick the first name.", Ref{SemVer: "~1.0"}, target{h('2'), "1.0.0", "refs/tags/1.0.0"}, 0, false},
		{"Equal versions on different commits are a tie to break.", Ref{SemVer: "^1"}, target{}, 2, false},
		{"A commit that is a tip is fetched through its ref.", Ref{Commit: h('1')}, target{h('1'), "", "refs/heads/main"}, 0, false},
		{"A commit that is no tip has no ref.", Ref{Commit: h('9')}, target{h('9'), "", ""}, 0, false},
		{"A missing branch is an error.", Ref{Branch: "gone"}, target{}, 0, true},
		{"A range above every tag is an error.", Ref{SemVer: ">=2"}, target{}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, tied, err := l.resolve(tt.ref)
			g.Expect(err != nil).To(Equal(tt.wantErr), "err %v", err)
			g.Expect(got).To(Equal(tt.want))
			g.Expect(tied).To(HaveLen(tt.wantTied))
		})
	}
}

func TestBreakTie(t *testing.T) {
	cands := []candidate{{tag: "v1+a", commit: "c1"}, {tag: "v1+b", commit: "c2"}, {tag: "v1+c", commit: "c3"}}
	tests := []struct {
		name  string
		times map[string]int64
		want  string
	}{
		{"The newest commit wins.", map[string]int64{"c1": 3, "c2": 1, "c3": 2}, "v1+a"},
		{"Equal times fall back to name order.", map[string]int64{"c1": 1, "c2": 5, "c3": 5}, "v1+b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got := breakTie(cands, func(c string) int64 { return tt.times[c] })
			g.Expect(got.name).To(Equal(tt.want))
		})
	}
}

func make40(c byte) []byte {
	b := make([]byte, 40)
	for i := range b {
		b[i] = c
	}
	return b
}
