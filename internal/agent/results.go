package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// maxResultBytes bounds a result file: outputs end up in an object of the
// API server, which refuses objects past about 1.5 MiB.
const maxResultBytes = 256 << 10

// ReadResults collects the key-values of every result file under dir
// ("<container>/__result__"), in lexical order of their paths. Each line
// is "<key>:<value>" split at the first colon, as Cyclone reads it; blank
// lines and lines without a colon are skipped. A key given again keeps
// its first position and takes the last value, so outputs have unique
// keys.
func ReadResults(dir string) ([]cyclonev1alpha1.KeyValue, error) {
	var out []cyclonev1alpha1.KeyValue
	index := map[string]int{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() || d.Name() != convention.ResultFile {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > maxResultBytes {
			return fmt.Errorf("result file %s is %d bytes, more than the %d allowed", p, info.Size(), maxResultBytes)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || k == "" {
				continue
			}
			if i, seen := index[k]; seen {
				out[i].Value = v
				continue
			}
			index[k] = len(out)
			out = append(out, cyclonev1alpha1.KeyValue{Key: k, Value: v})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return out, nil
}
