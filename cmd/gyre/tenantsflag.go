package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/render"
)

// reviewPolicy is what the review commands check targets against, since
// they read no Tenant from a cluster: the --pod-security level, and the
// Tenant objects of --tenants, whose level, scheduling and execution
// clusters then decide for their tenants as they do in the controller.
type reviewPolicy struct {
	level       podSecurityLevel
	tenantsFile string
	tenants     map[string]*gyrev1alpha1.Tenant
}

func (p *reviewPolicy) addFlags(cmd *cobra.Command) {
	p.level.addFlag(cmd)
	cmd.Flags().StringVar(&p.tenantsFile, "tenants", "",
		"YAML file of Tenant objects: their tenants' targets are checked at their spec.podSecurity and against their spec.scheduling and clusters, as in the cluster; other tenants at --pod-security")
}

// prepare checks the level and reads --tenants.
func (p *reviewPolicy) prepare() error {
	if err := p.level.validate(); err != nil {
		return err
	}
	if p.tenantsFile == "" {
		return nil
	}
	data, err := os.ReadFile(p.tenantsFile)
	if err != nil {
		return fmt.Errorf("--tenants: %w", err)
	}
	p.tenants, err = readTenants(p.tenantsFile, data)
	return err
}

// readTenants decodes the Tenant objects of a multi-document YAML file,
// naming the file and the document in any error.
func readTenants(file string, data []byte) (map[string]*gyrev1alpha1.Tenant, error) {
	out := map[string]*gyrev1alpha1.Tenant{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, doc, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		tn := &gyrev1alpha1.Tenant{}
		if err := yaml.UnmarshalStrict(raw, tn); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, doc, err)
		}
		if tn.APIVersion != gyrev1alpha1.GroupVersion.String() || tn.Kind != "Tenant" {
			return nil, fmt.Errorf("%s: document %d: is %s %s, not a %s Tenant", file, doc, tn.APIVersion, tn.Kind, gyrev1alpha1.GroupVersion)
		}
		if tn.Name == "" {
			return nil, fmt.Errorf("%s: document %d: Tenant has no metadata.name", file, doc)
		}
		if out[tn.Name] != nil {
			return nil, fmt.Errorf("%s: document %d: Tenant/%s is there twice", file, doc, tn.Name)
		}
		out[tn.Name] = tn
	}
	return out, nil
}

// apply gives a discovered target the policy its tenant is checked at.
func (p *reviewPolicy) apply(t *render.Target) {
	tn := p.tenants[t.Tenant]
	if tn == nil {
		t.PodSecurity = string(p.level)
		return
	}
	// Every target of a Tenant carries the same policy.
	of := render.TargetsForTenant(tn)[0]
	t.PodSecurity, t.Scheduling, t.ExecutionClusters = of.PodSecurity, of.Scheduling, of.ExecutionClusters
}
