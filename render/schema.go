package render

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"sort"
	"strings"
	"sync"

	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/gyreops/gyre/config"
)

// Schemas validates objects offline against CRD OpenAPI schemas, the way
// the API server would: structure, unknown fields, list types, metadata
// and CEL rules. It is safe for concurrent use.
type Schemas struct {
	versions map[schema.GroupVersionKind]*versionSchema
	scopes   map[schema.GroupKind]apiextensionsv1.ResourceScope
}

type versionSchema struct {
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
	// apartFromMetadata says that the schema asks of metadata only that
	// it be an object: no rule at the root, no constraint inside
	// metadata. Its objects' validation, but for ObjectMeta's own
	// checks, then depends on nothing in metadata, and is shared by
	// objects that differ only there (an overlay's renamed copies of a
	// base's objects); see validation.
	apartFromMetadata bool
}

// metadataFree reports whether a structural schema looks into metadata
// only to see that it is an object. At the root it may require fields:
// metadata is shared only when it is there.
func metadataFree(s *structuralschema.Structural) bool {
	if s.XPreserveUnknownFields || len(s.XValidations) > 0 {
		return false
	}
	if s.ValueValidation != nil {
		rest := *s.ValueValidation
		rest.Required = nil
		if !reflect.ValueOf(rest).IsZero() {
			return false
		}
	}
	m, ok := s.Properties["metadata"]
	return !ok || (m.Type == "object" && len(m.Properties) == 0 && m.AdditionalProperties == nil &&
		(m.ValueValidation == nil || reflect.ValueOf(*m.ValueValidation).IsZero()) &&
		len(m.XValidations) == 0 && !m.XPreserveUnknownFields && !m.XEmbeddedResource)
}

var (
	defaultSchemasOnce sync.Once
	defaultSchemas     *Schemas
	defaultSchemasErr  error
)

// DefaultSchemas returns the schemas of gyre's own CRDs (cyclone.dev and
// gyre.dev), built into the binary.
func DefaultSchemas() (*Schemas, error) {
	defaultSchemasOnce.Do(func() {
		sub, err := fs.Sub(config.CRDs, "crd/bases")
		if err != nil {
			defaultSchemasErr = err
			return
		}
		defaultSchemas, defaultSchemasErr = LoadSchemas(sub)
	})
	return defaultSchemas, defaultSchemasErr
}

// LoadSchemas reads every *.yaml file at the top of fsys as
// CustomResourceDefinitions.
func LoadSchemas(fsys fs.FS) (*Schemas, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	s := &Schemas{
		versions: map[schema.GroupVersionKind]*versionSchema{},
		scopes:   map[schema.GroupKind]apiextensionsv1.ResourceScope{},
	}
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		if err := s.add(data); err != nil {
			return nil, fmt.Errorf("load CRD schemas from %s: %w", name, err)
		}
	}
	return s, nil
}

func (s *Schemas) add(data []byte) error {
	dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(doc, &crd); err != nil {
			return err
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		gk := schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}
		s.scopes[gk] = crd.Spec.Scope
		for _, v := range crd.Spec.Versions {
			if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			var internal apiextensions.JSONSchemaProps
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
				return fmt.Errorf("%s %s: %w", gk, v.Name, err)
			}
			structural, err := structuralschema.NewStructural(&internal)
			if err != nil {
				return fmt.Errorf("%s %s: %w", gk, v.Name, err)
			}
			validator, _, err := apiservervalidation.NewSchemaValidator(&internal)
			if err != nil {
				return fmt.Errorf("%s %s: %w", gk, v.Name, err)
			}
			s.versions[gk.WithVersion(v.Name)] = &versionSchema{
				structural: structural,
				validator:  validator,
				cel:        cel.NewValidator(structural, true, celconfig.PerCallLimit),

				apartFromMetadata: metadataFree(structural),
			}
		}
	}
}

// Namespaced reports whether a kind is namespaced and whether the answer
// is known: from the CRDs for custom kinds, from a built-in list for the
// Kubernetes kinds a tenant repository plausibly contains.
func (s *Schemas) Namespaced(gk schema.GroupKind) (namespaced, known bool) {
	if s != nil {
		if scope, ok := s.scopes[gk]; ok {
			return scope == apiextensionsv1.NamespaceScoped, true
		}
	}
	if clusterScoped[gk] {
		return false, true
	}
	return true, false
}

// clusterScoped lists the cluster-scoped Kubernetes kinds.
var clusterScoped = func() map[schema.GroupKind]bool {
	m := map[schema.GroupKind]bool{}
	for _, gk := range []string{
		"Namespace", "Node", "PersistentVolume", "ComponentStatus",
		"CustomResourceDefinition.apiextensions.k8s.io",
		"APIService.apiregistration.k8s.io",
		"ClusterRole.rbac.authorization.k8s.io",
		"ClusterRoleBinding.rbac.authorization.k8s.io",
		"StorageClass.storage.k8s.io", "CSIDriver.storage.k8s.io",
		"CSINode.storage.k8s.io", "VolumeAttachment.storage.k8s.io",
		"PriorityClass.scheduling.k8s.io", "RuntimeClass.node.k8s.io",
		"IngressClass.networking.k8s.io",
		"MutatingWebhookConfiguration.admissionregistration.k8s.io",
		"ValidatingWebhookConfiguration.admissionregistration.k8s.io",
		"ValidatingAdmissionPolicy.admissionregistration.k8s.io",
		"ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io",
		"CertificateSigningRequest.certificates.k8s.io",
		"FlowSchema.flowcontrol.apiserver.k8s.io",
		"PriorityLevelConfiguration.flowcontrol.apiserver.k8s.io",
	} {
		m[schema.ParseGroupKind(gk)] = true
	}
	return m
}()

// Validate checks one object against its CRD schema and returns the
// field errors, sorted by field. Objects of kinds without a CRD are not
// checked; an object of a known kind in an unknown version is an error.
func (s *Schemas) Validate(ctx context.Context, obj *unstructured.Unstructured) field.ErrorList {
	return s.validate(ctx, obj, nil, "")
}

// validate is Validate, with the part of the work that does not look at
// metadata shared through memo between one tenant's objects that differ
// only in metadata, when the schema allows it. A nil memo shares
// nothing.
func (s *Schemas) validate(ctx context.Context, obj *unstructured.Unstructured, memo *rootFiles, tenant string) field.ErrorList {
	gvk := obj.GroupVersionKind()
	vs, ok := s.versions[gvk]
	if !ok {
		if _, known := s.scopes[gvk.GroupKind()]; known {
			return field.ErrorList{field.NotSupported(field.NewPath("apiVersion"), obj.GetAPIVersion(), s.servedVersions(gvk.GroupKind()))}
		}
		return nil
	}
	var v *schemaCheck
	var key validationKey
	_, metaIsMap := obj.Object["metadata"].(map[string]any)
	shared := memo != nil && vs.apartFromMetadata && metaIsMap
	if shared {
		var err error
		if key, err = validationKeyOf(s, tenant, obj); err != nil {
			shared = false
		} else {
			v = memo.validation(key)
		}
	}
	if v == nil {
		v = vs.validateApartFromMetadata(ctx, obj)
		if shared {
			memo.storeValidation(key, v)
		}
	}
	// The order of the API server's checks, for errors of one field.
	errs := append(field.ErrorList(nil), v.unknown...)
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, obj.Object, vs.structural, true)...)
	errs = append(errs, v.schema...)
	errs = append(errs, v.lists...)
	if len(errs) == 0 {
		errs = append(errs, v.cel...)
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	return errs
}

// schemaCheck is what validating an object gives apart from ObjectMeta's
// checks: unknown fields, the schema, list types and, computed only when
// those pass, CEL rules.
type schemaCheck struct {
	unknown, schema, lists, cel field.ErrorList
}

func (vs *versionSchema) validateApartFromMetadata(ctx context.Context, obj *unstructured.Unstructured) *schemaCheck {
	v := &schemaCheck{}
	// Unknown fields: the API server would silently drop them, which in a
	// reviewed repository hides a typo; here they are errors.
	pruned := obj.DeepCopy().Object
	opts := structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}
	for _, p := range pruning.PruneWithOptions(pruned, vs.structural, true, opts) {
		v.unknown = append(v.unknown, field.Invalid(field.NewPath(p), nil, "unknown field"))
	}
	v.schema = apiservervalidation.ValidateCustomResource(nil, obj.Object, vs.validator)
	v.lists = listtype.ValidateListSetsAndMaps(nil, vs.structural, obj.Object)
	if len(v.unknown) == 0 && len(v.schema) == 0 && len(v.lists) == 0 && vs.cel != nil {
		v.cel, _ = vs.cel.Validate(ctx, nil, vs.structural, obj.Object, nil, celconfig.RuntimeCELCostBudget)
	}
	return v
}

// validationKey identifies an object apart from its metadata, for the
// schemas that validate it. A validation is a function of the object's
// content alone; the tenant is part of the key all the same, so that no
// render is shaped by another tenant's, not even in time.
type validationKey struct {
	schemas *Schemas
	tenant  string
	sum     [sha256.Size]byte
}

func validationKeyOf(s *Schemas, tenant string, obj *unstructured.Unstructured) (validationKey, error) {
	rest := make(map[string]any, len(obj.Object))
	for k, v := range obj.Object {
		if k != "metadata" {
			rest[k] = v
		}
	}
	b, err := json.Marshal(rest) // map keys sorted: the same object, the same bytes
	if err != nil {
		return validationKey{}, err
	}
	return validationKey{schemas: s, tenant: tenant, sum: sha256.Sum256(b)}, nil
}

func (s *Schemas) servedVersions(gk schema.GroupKind) []string {
	var vs []string
	for gvk := range s.versions {
		if gvk.GroupKind() == gk {
			vs = append(vs, path.Join(gk.Group, gvk.Version))
		}
	}
	sort.Strings(vs)
	return vs
}

// fieldError converts an API field error to a render Error.
func fieldError(file string, obj *unstructured.Unstructured, e *field.Error) Error {
	msg := e.ErrorBody()
	if e.Type == field.ErrorTypeInvalid && e.BadValue == nil {
		msg = e.Detail
	}
	return Error{File: file, Kind: obj.GetKind(), Name: obj.GetName(), Field: strings.TrimPrefix(e.Field, "<nil>"), Message: msg}
}
