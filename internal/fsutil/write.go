package fsutil

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to the file at path, creating the directories
// that lead to it (mode 0755) and the file (mode 0644) if need be: how
// tests and benchmarks lay out a repository one file at a time.
func WriteFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
