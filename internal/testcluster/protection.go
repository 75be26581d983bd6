package testcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/config"
	"github.com/gyreops/gyre/internal/convention"
)

// InstallProtection installs gyre's deletion protection policy
// (config/protection) on the cluster of cfg, as `kubectl apply -k
// config/default` does, and returns once the API server enforces it: the
// API server loads a new policy in the background, and a deletion a
// moment after the install would otherwise still pass.
func InstallProtection(ctx context.Context, cfg *rest.Config) error {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return fmt.Errorf("install deletion protection: %w", err)
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(config.Protection), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("install deletion protection: config/protection/deletion-protection.yaml: %w", err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(convention.FieldManager), client.ForceOwnership); err != nil {
			return fmt.Errorf("install deletion protection: %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	return waitForProtection(ctx, c)
}

// waitForProtection tries, as a dry run, to delete a namespace the policy
// protects until the API server refuses it.
func waitForProtection(ctx context.Context, c client.Client) error {
	probe := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "gyre-protection-probe-",
		Labels:       map[string]string{convention.TenantLabel: "probe", convention.ManagedByLabel: convention.ManagedBy},
	}}
	if err := c.Create(ctx, probe); err != nil {
		return fmt.Errorf("install deletion protection: probe namespace: %w", err)
	}
	defer func() {
		// Lifted, so that the probe can go.
		patch := client.MergeFrom(probe.DeepCopy())
		metav1.SetMetaDataAnnotation(&probe.ObjectMeta, "gyre.dev/deletion-protection", "disabled")
		_ = c.Patch(context.Background(), probe, patch)
		_ = c.Delete(context.Background(), probe)
	}()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		err := c.Delete(ctx, probe, client.DryRunAll)
		switch {
		case err == nil:
			return false, nil
		case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "protected from deletion"):
			return true, nil
		default:
			return false, err
		}
	})
	if err != nil {
		return fmt.Errorf("install deletion protection: the API server does not enforce it: %w", err)
	}
	return nil
}
