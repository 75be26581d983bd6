package testcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
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
	if err := applyManifest(ctx, c, config.Protection); err != nil {
		return fmt.Errorf("install deletion protection: config/protection/deletion-protection.yaml: %w", err)
	}
	return waitForProtection(ctx, c)
}

// InstallRunFinalizer installs the policy that gives every new WorkflowRun
// the engine's finalizer (config/admission), as `kubectl apply -k
// config/default` does, and returns once the API server applies it.
func InstallRunFinalizer(ctx context.Context, cfg *rest.Config) error {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return fmt.Errorf("install the run finalizer policy: %w", err)
	}
	if err := applyManifest(ctx, c, config.RunFinalizer); err != nil {
		return fmt.Errorf("install the run finalizer policy: config/admission/run-finalizer.yaml: %w", err)
	}
	// Created as a dry run until the API server, which loads a new
	// policy in the background, adds the finalizer.
	probe := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cyclone.dev/v1alpha1",
		"kind":       "WorkflowRun",
		"metadata":   map[string]any{"generateName": "gyre-finalizer-probe-", "namespace": metav1.NamespaceDefault},
		"spec":       map[string]any{"workflowRef": map[string]any{"name": "probe"}},
	}}
	// The WorkflowRun CRD may not be served yet either.
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		o := probe.DeepCopy()
		if last = c.Create(ctx, o, client.DryRunAll); last != nil {
			return false, nil
		}
		return slices.Contains(o.GetFinalizers(), convention.RunFinalizer), nil
	})
	if err != nil {
		return fmt.Errorf("install the run finalizer policy: the API server does not apply it (last probe: %v): %w", last, err)
	}
	return nil
}

// applyManifest server-side applies every object of a YAML stream.
func applyManifest(ctx context.Context, c client.Client, data []byte) error {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if len(obj.Object) == 0 {
			continue
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(convention.FieldManager), client.ForceOwnership); err != nil {
			return fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
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
