package render

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/openapi"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"
)

// kustomizeConfig is gyre's nameReference configuration for Cyclone
// kinds; every render merges what it needs of it (see refChoice) into
// kustomize's built-in one.
//
//go:embed kustomizeconfig.yaml
var kustomizeConfig []byte

// originAnnotation is where kustomize records the file an object came
// from when asked to (buildMetadata: [originAnnotations]).
const originAnnotation = "config.kubernetes.io/origin"

// kustomizeMu keeps kustomize's one piece of process-wide state that a
// kustomization can change, kyaml's OpenAPI schema, from leaking between
// targets. A kustomization's openapi field (a custom schema, or a
// built-in version) changes the schema strategic merge patches of every
// build in the process use, and a custom schema stays after the build
// that set it: one tenant's schema would change how another tenant's
// patches merge. precheck refuses the field, so builds of local
// kustomizations never touch the schema and share the lock. A remote
// base is not read before kustomize fetches it: a build that may load one
// takes the lock alone, and fails, with the schema reset, if the schema
// changed.
//
// kyaml guards the schema with its own lock, and -race shows no other
// shared state (TestRender_concurrent). Measured with kustomize/api
// v0.21.2 on two cores shared with other work, 4 goroutines rendering
// 1,000 targets of 20 objects: with the other work leaving about one core
// free, concurrent builds rendered about 1,900 objects/s against 1,100
// serialised (BenchmarkRender scale/parallel, three runs each, in
// separate runs); with both cores taken by other work,
// BenchmarkRenderConcurrency, which alternates the two within one run,
// found them equal (0.92 to 1.03). Concurrent builds gain when a core is
// idle and lose nothing when none is.
var kustomizeMu sync.RWMutex

// openAPIRefusal is precheck's refusal of a kustomization's openapi field.
const openAPIRefusal = "a custom OpenAPI schema is refused: kustomize would use it for every target gyre renders, other tenants' too"

// built is kustomize's output for one target, before tenancy and
// validation.
type built struct {
	objects []*unstructured.Unstructured
	origins []string // per object: source file relative to the root
	sizes   []int    // per object: the size of kustomize's output as JSON
}

// entryKustomization is the in-memory kustomization gyre builds for a
// target: it includes the target directory (or, for a directory without a
// kustomization, its YAML files), merges gyre's transformer configuration
// and, with origins, asks kustomize to record each object's origin file.
func entryKustomization(fsys *confinedFS, dir string, origins bool) ([]byte, error) {
	abs := filepath.Join(fsys.root, filepath.FromSlash(dir))
	var resources []string
	if hasKustomization(abs) {
		r, err := filepath.Rel(fsys.vdir, abs)
		if err != nil {
			return nil, err
		}
		resources = []string{filepath.ToSlash(r)}
	} else {
		names, err := fsys.ReadDir(abs)
		if err != nil {
			return nil, err
		}
		sort.Strings(names)
		for _, n := range names {
			if !isYAML(n) || fsys.IsDir(filepath.Join(abs, n)) {
				continue
			}
			r, err := filepath.Rel(fsys.vdir, filepath.Join(abs, n))
			if err != nil {
				return nil, err
			}
			resources = append(resources, filepath.ToSlash(r))
		}
		if len(resources) == 0 {
			return nil, fmt.Errorf("directory has neither a kustomization nor YAML files")
		}
	}
	k := types.Kustomization{
		TypeMeta:       types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources:      resources,
		Configurations: []string{"gyre-config.yaml"},
	}
	if origins {
		k.BuildMetadata = []string{types.OriginAnnotations}
	}
	return yaml.Marshal(k)
}

func hasKustomization(dir string) bool {
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && !fi.IsDir() {
			return true
		}
	}
	return false
}

// kustomize builds dir (relative to the repository root) in-process:
// builtin plugins only, no exec or Go plugins, no Helm, files loadable
// from anywhere in the repository (overlays reach ../../base) but not
// outside it, which fsys enforces.
//
// Objects' origin files are recorded only when origins is set: kustomize
// then tracks them through every transformer, which costs about a tenth
// of a build, and they only serve to name files in errors.
func kustomize(fsys *confinedFS, dir string, origins bool) (*built, error) {
	entry, err := entryKustomization(fsys, dir, origins)
	if err != nil {
		return nil, err
	}
	fsys.virtual[filepath.Join(fsys.vdir, konfig.DefaultKustomizationFileName())] = entry
	fsys.virtual[fsys.refsPath] = nil // chosen when read, by fsys.refs

	opts := &krusty.Options{
		Reorder:          krusty.ReorderOptionNone,
		LoadRestrictions: types.LoadRestrictionsNone,
		PluginConfig:     types.DisabledPluginConfig(),
	}
	m, err := build(fsys, opts)
	if err != nil {
		return nil, err
	}
	out, err := builtOf(m, fsys, origins)
	if err != nil || fsys.refs.full || !fsys.refs.missed(out.objects) {
		return out, err
	}
	fsys.refs.full = true
	return kustomize(fsys, dir, origins)
}

// builtOf turns kustomize's output into gyre's objects.
func builtOf(m resmap.ResMap, fsys *confinedFS, origins bool) (*built, error) {
	var err error

	out := &built{}
	for _, r := range m.Resources() {
		var origin *resource.Origin
		if origins {
			if origin, err = r.GetOrigin(); err != nil {
				return nil, fmt.Errorf("read origin of %s: %w", r.CurId(), err)
			}
		}
		b, err := nodeJSON(&r.RNode)
		if err != nil {
			return nil, fmt.Errorf("marshal %s: %w", r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return nil, fmt.Errorf("decode %s: %w", r.CurId(), err)
		}
		annotations := u.GetAnnotations()
		delete(annotations, originAnnotation)
		if len(annotations) == 0 {
			annotations = nil
		}
		u.SetAnnotations(annotations)
		out.objects = append(out.objects, u)
		out.origins = append(out.origins, fsys.originFile(origin))
		out.sizes = append(out.sizes, len(b))
	}
	return out, nil
}

// build runs kustomize under kustomizeMu; see there.
func build(fsys *confinedFS, opts *krusty.Options) (resmap.ResMap, error) {
	if !fsys.remoteOK {
		kustomizeMu.RLock()
		defer kustomizeMu.RUnlock()
		return krusty.MakeKustomizer(opts).Run(fsys, fsys.vdir)
	}
	kustomizeMu.Lock()
	defer kustomizeMu.Unlock()
	before := openapi.GetSchemaVersion()
	m, err := krusty.MakeKustomizer(opts).Run(fsys, fsys.vdir)
	if openapi.GetSchemaVersion() != before {
		openapi.ResetOpenAPI()
		return nil, Error{Field: "openapi", Message: "a remote base sets its OpenAPI schema: " + openAPIRefusal}
	}
	return m, err
}

// nodeJSON is the JSON of an object's YAML node, as kyaml's MarshalJSON
// gives it. It decodes the node as it stands, where MarshalJSON prints it
// as YAML and parses that again with the same decoder: the round trip
// cost a third of a build and changed nothing.
func nodeJSON(rn *kyaml.RNode) ([]byte, error) {
	m, err := rn.Map()
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// originFile turns a kustomize origin into a file relative to the
// repository root: the file an object was read from or, for generated
// objects, the kustomization that generated it.
func (f *confinedFS) originFile(o *resource.Origin) string {
	if o == nil {
		return ""
	}
	p := o.Path
	if p == "" {
		p = o.ConfiguredIn
	}
	if p == "" {
		return ""
	}
	if o.Repo != "" {
		return o.Repo + "//" + p
	}
	return f.rel(filepath.Join(f.vdir, filepath.FromSlash(p)))
}

// remoteRef reports whether a kustomization entry names something remote:
// a URL, or a git repository in one of the forms kustomize accepts.
func remoteRef(ref string) bool {
	if strings.Contains(ref, "://") {
		return true
	}
	for _, prefix := range []string{"git::", "git@", "gh:"} {
		if strings.HasPrefix(ref, prefix) {
			return true
		}
	}
	// github.com/org/repo//path?ref=v1: a host name as first segment.
	first := strings.Split(ref, "/")[0]
	return strings.Contains(first, ".") && first != "." && first != ".." &&
		strings.Count(ref, "/") >= 2 && (strings.Contains(ref, "//") || strings.Contains(ref, "?ref="))
}

// precheck walks the kustomizations reachable from dir, before kustomize
// runs, and reports what gyre refuses with the file and field that asked
// for it: remote bases and files (unless allowed), paths leaving the
// repository and Helm charts. kustomize would otherwise clone or download
// first and fail, if at all, with less context.
//
// It reads through fsys, so the kustomizations it reads are confined,
// capped and checked like every other file (refusals are recorded there).
func precheck(fsys *confinedFS, dir string, allowRemote bool) []Error {
	var errs []Error
	seen := map[string]bool{}
	var visit func(dir string)
	visit = func(dir string) {
		if seen[dir] {
			return
		}
		seen[dir] = true
		abs := filepath.Join(fsys.root, filepath.FromSlash(dir))
		var file string
		var data []byte
		for _, n := range konfig.RecognizedKustomizationFileNames() {
			if !fsys.Exists(filepath.Join(abs, n)) {
				continue
			}
			if b, err := fsys.ReadFile(filepath.Join(abs, n)); err == nil {
				file, data = path.Join(dir, n), b
			}
			break
		}
		if file == "" {
			return
		}
		var k types.Kustomization
		if err := k.Unmarshal(data); err != nil {
			return // kustomize reports it
		}
		k.FixKustomization()
		// check vets one reference to a file or directory; dirs says that
		// a directory is followed, must that a missing path is reported
		// here, by the kustomization field that names it (kustomize's own
		// error names it relative to the kustomization, layers deep).
		check := func(field, ref string, dirs, must bool) {
			if ref == "" {
				return
			}
			if remoteRef(ref) || (!dirs && (strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://"))) {
				if !allowRemote {
					errs = append(errs, Error{File: file, Field: field, Message: fmt.Sprintf("remote %q refused: the repository does not allow remote bases", ref)})
				}
				return
			}
			if strings.HasPrefix(ref, "/") {
				errs = append(errs, Error{File: file, Field: field, Message: fmt.Sprintf("absolute path %q refused: paths are relative to the kustomization", ref)})
				return
			}
			target := path.Join(dir, filepath.ToSlash(ref))
			if target == ".." || strings.HasPrefix(target, "../") {
				errs = append(errs, Error{File: file, Field: field, Message: fmt.Sprintf("path %q is outside the repository", ref)})
				return
			}
			abs := filepath.Join(fsys.root, filepath.FromSlash(target))
			if must && !fsys.Exists(abs) {
				if _, err := os.Lstat(abs); errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, Error{File: file, Field: field, Message: fmt.Sprintf("%s does not exist", target)})
					return
				}
			}
			if dirs && fsys.IsDir(abs) {
				visit(target)
			} else if dirs && strings.HasPrefix(field, "resources[") {
				fsys.markResourceFile(abs)
			}
		}
		for i, r := range k.Resources {
			check(fmt.Sprintf("resources[%d]", i), r, true, true)
		}
		for i, r := range k.Components {
			check(fmt.Sprintf("components[%d]", i), r, true, true)
		}
		for i, r := range k.Crds {
			check(fmt.Sprintf("crds[%d]", i), r, false, true)
		}
		for i, r := range k.Configurations {
			check(fmt.Sprintf("configurations[%d]", i), r, false, true)
		}
		if len(k.OpenAPI) > 0 {
			errs = append(errs, Error{File: file, Field: "openapi", Message: openAPIRefusal})
		}
		for i, p := range k.Patches {
			check(fmt.Sprintf("patches[%d].path", i), p.Path, false, true)
		}
		// The deprecated patch fields still work in kustomize, so they
		// are checked like the rest.
		//lint:ignore SA1019 checked because kustomize still honours it
		for i, p := range k.PatchesJson6902 {
			check(fmt.Sprintf("patchesJson6902[%d].path", i), p.Path, false, true)
		}
		//lint:ignore SA1019 checked because kustomize still honours it
		for i, p := range k.PatchesStrategicMerge {
			if !strings.Contains(string(p), "\n") {
				check(fmt.Sprintf("patchesStrategicMerge[%d]", i), string(p), false, false)
			}
		}
		for i, g := range k.ConfigMapGenerator {
			checkGenerator(check, fmt.Sprintf("configMapGenerator[%d]", i), g.GeneratorArgs)
		}
		for i, g := range k.SecretGenerator {
			checkGenerator(check, fmt.Sprintf("secretGenerator[%d]", i), g.GeneratorArgs)
		}
		for _, list := range []struct {
			field string
			refs  []string
		}{{"generators", k.Generators}, {"transformers", k.Transformers}, {"validators", k.Validators}} {
			for i, r := range list.refs {
				if !strings.Contains(r, "\n") {
					check(fmt.Sprintf("%s[%d]", list.field, i), r, true, false)
				}
			}
		}
		if len(k.HelmCharts) > 0 || k.HelmGlobals != nil {
			errs = append(errs, Error{File: file, Field: "helmCharts", Message: "Helm charts are not supported"})
		}
	}
	visit(dir)
	return errs
}

func checkGenerator(check func(field, ref string, dirs, must bool), field string, g types.GeneratorArgs) {
	for i, s := range g.FileSources {
		// A file source may be "key=path".
		if k, v, ok := strings.Cut(s, "="); ok && !strings.Contains(k, "/") {
			s = v
		}
		check(fmt.Sprintf("%s.files[%d]", field, i), s, false, true)
	}
	for i, s := range g.EnvSources {
		check(fmt.Sprintf("%s.envs[%d]", field, i), s, false, true)
	}
}

// explain turns the error of a kustomize build of dir into what a user
// needs to fix it. kustomize wraps the cause in one layer per
// kustomization it recursed through and names files relative to the
// kustomization that loaded them, so its message is long and the file
// hard to find. When a file the build read does not parse as YAML and
// kustomize's message names it or quotes its syntax error, that error,
// with the file's path in the repository, is the whole story. Otherwise
// the innermost kustomization directory and kustomize's message from
// there on are kept, shortened for the failures it words worst.
func (f *confinedFS) explain(dir string, err error) []Error {
	if e, ok := errors.AsType[Error](err); ok {
		return []Error{e} // gyre's own refusal, already explained
	}
	msg := f.cleanMessage(err.Error())
	f.mu.Lock()
	syntax := append([]Error(nil), f.syntax...)
	f.mu.Unlock()
	var causes []Error
	for _, s := range syntax {
		if strings.Contains(msg, path.Base(s.File)) || strings.Contains(msg, s.Message) {
			causes = append(causes, s)
		}
	}
	if len(causes) > 0 {
		return causes
	}
	file := dir
	for _, marker := range []string{"recursed accumulation of path '", "couldn't make target for path '"} {
		if i := strings.LastIndex(msg, marker); i >= 0 {
			if p, rest, ok := strings.Cut(msg[i+len(marker):], "': "); ok {
				file, msg = p, rest
				break
			}
		}
	}
	if rest, ok := strings.CutPrefix(msg, "invalid Kustomization: "); ok {
		kf := f.kustomizationFile(file)
		for _, s := range syntax {
			if s.File == kf {
				return []Error{s} // the line in the file, not in kustomize's copy
			}
		}
		return []Error{{File: kf, Message: rest}}
	}
	if m := unmatchedPatch.FindStringSubmatch(msg); m != nil {
		return []Error{{File: f.kustomizationFile(file), Field: "patches",
			Message: fmt.Sprintf("no object to patch: %s %q is not in the build", m[1], m[2])}}
	}
	return []Error{{File: file, Message: msg}}
}

// unmatchedPatch matches kustomize's error for a strategic merge patch
// whose target is not in the build; its resource id reads
// Kind.version.group/name.[namespace], and a name may hold dots.
var unmatchedPatch = regexp.MustCompile(`no resource matches strategic merge patch "([^".]+)\.[^"/]*/([^"]*)\.\[[^\]]*\]"`)

// kustomizationFile names the kustomization file of dir, relative to the
// root, or dir itself when it has none.
func (f *confinedFS) kustomizationFile(dir string) string {
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		if f.Exists(filepath.Join(f.root, filepath.FromSlash(dir), n)) {
			return path.Join(dir, n)
		}
	}
	return dir
}
