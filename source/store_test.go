package source

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

func TestStore_Dir(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	s := Store{Root: "/cache"}
	tests := []struct {
		name, repo, ignore, want string
	}{
		{"Without ignore the leaf is the commit.", "app", "", "/cache/app/" + commit},
		{"Blank ignore text counts as none.", "app", "\n  \n", "/cache/app/" + commit},
		{"An ignore adds a hash of its text.", "app", "docs/\n", "/cache/app/" + commit + "-"},
		{"A name cannot climb out of the store.", "../../etc", "", "/cache/_.._etc/" + commit},
		{"A name cannot hide as a dot directory.", ".tmp-x", "", "/cache/tmp-x/" + commit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(s.Dir(tt.repo, commit, tt.ignore)).To(HavePrefix(tt.want))
		})
	}
}

func TestStore_defaultRootIsNeverTheWorkingDirectory(t *testing.T) {
	g := NewWithT(t)
	g.Expect(filepath.IsAbs(Store{}.Dir("app", "abc", ""))).To(BeTrue())
	g.Expect(Store{}.Dir("app", "abc", "")).To(HavePrefix(os.TempDir()))
}

func TestStore_Remove(t *testing.T) {
	g := NewWithT(t)
	s := Store{Root: t.TempDir()}
	dir := s.Dir("app", "abc", "")
	g.Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	g.Expect(s.Remove("app")).To(Succeed())
	g.Expect(filepath.Dir(dir)).NotTo(BeADirectory())
}
