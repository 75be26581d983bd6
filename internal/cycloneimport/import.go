package cycloneimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/gyreops/gyre/internal/podsecurity"
)

// Options say what to import and how to write it.
type Options struct {
	// Tenants to import, each from namespace cyclone-<tenant>.
	Tenants []string
	// Runs imports WorkflowRuns as well. They are history rather than
	// desired state: gyre starts each run it applies once more.
	Runs bool
	// RepoURL is the URL the Repository manifest names; a placeholder to
	// fill in when empty.
	RepoURL string
	// Repository names the Repository; DefaultRepository when empty.
	Repository string
	// PodSecurity is the Pod Security level of the Tenants, which the
	// import checks stages and runs at; baseline when empty.
	PodSecurity string
	// AgeRecipients, when given, get the referenced Secrets with their
	// values, encrypted to them; otherwise placeholders are written.
	AgeRecipients []age.Recipient
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
}

// DefaultRepository is the name of the Repository an import writes.
const DefaultRepository = "pipelines"

// RepoURLPlaceholder stands for the Repository's URL until the user
// gives it. It matches the URL pattern of the CRD, so a forgotten
// placeholder is a failed fetch that names it, not a refused object.
const RepoURLPlaceholder = "https://git.example.com/FILL-ME/pipelines.git"

// FillMe replaces every Secret value in a placeholder Secret.
const FillMe = "FILL-ME"

// Action says what became of something the import could not carry over
// as it was.
type Action string

// Actions, in the order a report lists them.
const (
	// LeftOut is not in what gyre applies: an object moved to left-out/
	// or something not written at all.
	LeftOut Action = "left out"
	// Changed was carried over with a change.
	Changed Action = "changed"
	// ToDo was carried over, or stands in the repository, and needs the
	// user.
	ToDo Action = "to do"
)

func (a Action) rank() int { return slices.Index([]Action{LeftOut, Changed, ToDo}, a) }

// Note is one thing an import could not carry over as it was.
type Note struct {
	// Tenant the note is about.
	Tenant string `json:"tenant"`
	// Object is "Kind/name", or empty for the tenant as a whole.
	Object string `json:"object,omitempty"`
	// Action says what became of it.
	Action Action `json:"action"`
	// Message says what and why, and what to do.
	Message string `json:"message"`
}

// String is the note as a line of the report: "tenant t: Kind/name:
// message".
func (n Note) String() string {
	s := "tenant " + n.Tenant + ": "
	if n.Object != "" {
		s += n.Object + ": "
	}
	return s + n.Message
}

// Report is what an import wrote and what it could not carry over.
type Report struct {
	// Tenants are what was written for each tenant, in name order.
	Tenants []TenantReport `json:"tenants"`
	// Notes, by tenant, action, object and message.
	Notes []Note `json:"notes,omitempty"`
}

// TenantReport is what an import wrote for one tenant.
type TenantReport struct {
	// Tenant's name.
	Tenant string `json:"tenant"`
	// Objects written to tenants/<tenant>/base, per kind.
	Objects map[string]int `json:"objects"`
	// LeftOut are the objects moved to left-out/<tenant>, per kind.
	LeftOut map[string]int `json:"leftOut,omitempty"`
	// ByHand are the files under by-hand/ to apply by hand, relative to
	// the output directory.
	ByHand []string `json:"byHand,omitempty"`
}

// Import reads the Cyclone tenants o names from the cluster cfg reaches
// and writes the repository to dir, which must be empty or not exist.
func Import(ctx context.Context, cfg *rest.Config, dir string, o Options) (*Report, error) {
	if err := o.complete(); err != nil {
		return nil, err
	}
	if err := emptyDir(dir); err != nil {
		return nil, err
	}
	// An import makes a few dozen requests a tenant, one per kind of its
	// namespace: client-go's default of 5 a second would be most of its
	// time.
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS < 50 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	r := &reader{dyn: dyn, disc: disc, o: o}
	var tenants []*tenant
	for i, name := range o.Tenants {
		r.say("Reading tenant %s (%d of %d) from namespace %s", name, i+1, len(o.Tenants), namespace(name))
		t, err := r.tenant(ctx, name)
		if err != nil {
			return nil, err
		}
		tenants = append(tenants, t)
	}
	return writeAll(ctx, dir, tenants, o)
}

// writeAll writes the repository next to dir and renames it into place
// once whole, so that a failed or interrupted import leaves dir as it
// was, ready for the next attempt.
func writeAll(ctx context.Context, dir string, tenants []*tenant, o Options) (*Report, error) {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+"-import-")
	if err != nil {
		return nil, err
	}
	rep, err := write(ctx, tmp, tenants, o)
	if err == nil {
		// The temporary directory is 0700; the repository is not secret.
		err = os.Chmod(tmp, 0o755)
	}
	if err == nil {
		// An empty dir makes way: os.Remove removes nothing else.
		if rm := os.Remove(dir); rm != nil && !errors.Is(rm, os.ErrNotExist) {
			err = rm
		}
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	return rep, nil
}

// repoURLRe is the pattern the Repository CRD holds spec.url to.
var repoURLRe = regexp.MustCompile(`^((https?|ssh)://[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$`)

// complete checks the options and fills in defaults.
func (o *Options) complete() error {
	if len(o.Tenants) == 0 {
		return errors.New("no tenant to import: name one or more with --tenant")
	}
	for _, t := range o.Tenants {
		// The Tenant CRD's own rules: cyclone-<t>-worker must be a name.
		if errs := validation.IsDNS1123Label(t); len(errs) > 0 || len(t) > 48 || strings.HasSuffix(t, "-worker") {
			return fmt.Errorf("tenant %q: not a gyre tenant name (a DNS label of at most 48 characters, not ending in -worker)", t)
		}
	}
	o.Tenants = slices.Compact(slices.Sorted(slices.Values(o.Tenants)))
	if o.RepoURL != "" && !repoURLRe.MatchString(o.RepoURL) {
		return fmt.Errorf("repository URL %q: want https://, http://, ssh:// or user@host:path, as a Repository's spec.url", o.RepoURL)
	}
	if o.Repository != "" {
		if errs := validation.IsDNS1123Subdomain(o.Repository); len(errs) > 0 {
			return fmt.Errorf("repository name %q: %s", o.Repository, strings.Join(errs, "; "))
		}
	}
	if o.Repository == "" {
		o.Repository = DefaultRepository
	}
	if o.PodSecurity == "" {
		o.PodSecurity = podsecurity.DefaultLevel
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return nil
}

// emptyDir refuses a directory with anything in it: an import writes a
// whole repository and never merges into one.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty: import writes a new repository; give it an empty or new directory", dir)
	}
	return nil
}

// ParseRecipient reads an age recipient as the age command line takes
// it: an X25519 key (age1...) or an SSH public key (ssh-ed25519 or
// ssh-rsa), so a team can encrypt to the keys it already has.
func ParseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "ssh-") {
		return agessh.ParseRecipient(s)
	}
	return age.ParseX25519Recipient(s)
}
