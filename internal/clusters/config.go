package clusters

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// CredentialError says that an ExecutionCluster's credentials cannot be
// used as written: the ExecutionCluster or its Secret must change before
// the cluster can be reached, so retrying does not help. Field names the
// offending field, as a user would find it in the object.
type CredentialError struct {
	// Cluster is the ExecutionCluster's name.
	Cluster string
	// Field is where the problem is, e.g.
	// spec.credential.tlsClientConfig.caFile or
	// secret creds/far key value: users[admin].exec.
	Field string
	// Reason says what is wrong and what to do instead. It never holds a
	// credential.
	Reason string
}

func (e *CredentialError) Error() string {
	return fmt.Sprintf("execution cluster %s: %s: %s", e.Cluster, e.Field, e.Reason)
}

// Config returns the rest.Config that reaches the ExecutionCluster
// ec, and a version that changes whenever the credentials it was made from
// change, so a caller that keeps a client knows when to make a new one.
// secrets reads the Secret that spec.secretRef names; it should read the
// API server directly, so that Secrets are never cached in memory.
//
// spec.secretRef, gyre's way, wins over Cyclone's inline spec.credential;
// within spec.credential, kubeConfig wins over the other fields, as in
// Cyclone. An inline credential is server plus bearerToken or
// user/password, with tlsClientConfig's caData or insecure; without
// tlsClientConfig the server is verified against the system roots (Cyclone
// skipped verification).
//
// Whoever can write an ExecutionCluster or its Secret must not be able to
// make the controller run a program or read the controller's own files, so
// exec and auth-provider plugins and paths to CA, certificate, key and
// token files are refused with a *CredentialError, as is anything else that
// cannot work as written.
func Config(ctx context.Context, secrets client.Reader, ec *cyclonev1alpha1.ExecutionCluster) (*rest.Config, string, error) {
	if ref := ec.Spec.SecretRef; ref != nil {
		return secretConfig(ctx, secrets, ec, ref)
	}
	cred := &ec.Spec.Credential
	version := objectVersion(ec)
	if cred.KubeConfig != nil && !isNull(cred.KubeConfig.Raw) {
		const field = "spec.credential.kubeConfig"
		raw, err := decodeCycloneKubeconfig(cred.KubeConfig.Raw)
		if err != nil {
			return nil, "", &CredentialError{Cluster: ec.Name, Field: field, Reason: err.Error()}
		}
		cfg, err := kubeconfigREST(ec.Name, field, ".", raw)
		return cfg, version, err
	}
	cfg, err := inlineConfig(ec.Name, cred)
	return cfg, version, err
}

// objectVersion changes when ec's spec does. The generation ignores label
// and annotation edits, which must not cost a reconnect; objects that
// never went through an API server have none, so their resourceVersion
// stands in.
func objectVersion(ec *cyclonev1alpha1.ExecutionCluster) string {
	if ec.Generation > 0 {
		return "generation " + strconv.FormatInt(ec.Generation, 10)
	}
	return "resourceVersion " + ec.ResourceVersion
}

func secretConfig(ctx context.Context, secrets client.Reader, ec *cyclonev1alpha1.ExecutionCluster, ref *cyclonev1alpha1.SecretKeyReference) (*rest.Config, string, error) {
	key := ref.Key
	if key == "" {
		key = "value"
	}
	secret := &corev1.Secret{}
	if err := secrets.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, secret); err != nil {
		return nil, "", fmt.Errorf("execution cluster %s: spec.secretRef: secret %s/%s: %w", ec.Name, ref.Namespace, ref.Name, err)
	}
	// The ExecutionCluster's own version is part of it, so that pointing
	// secretRef elsewhere reconnects too.
	version := objectVersion(ec) + ", secret " + secret.ResourceVersion
	field := fmt.Sprintf("secret %s/%s key %s", ref.Namespace, ref.Name, key)
	data, ok := secret.Data[key]
	if !ok {
		return nil, "", &CredentialError{Cluster: ec.Name, Field: field, Reason: "no such key in the secret"}
	}
	raw, err := clientcmd.Load(data)
	if err != nil {
		return nil, "", &CredentialError{Cluster: ec.Name, Field: field, Reason: "not a kubeconfig: " + err.Error()}
	}
	// Fields inside a Secret's kubeconfig are named by the kubeconfig's
	// own keys, which is what its author wrote.
	cfg, err := kubeconfigREST(ec.Name, field, ": ", raw)
	return cfg, version, err
}

// inlineConfig builds the rest.Config of Cyclone's inline fields.
func inlineConfig(cluster string, cred *cyclonev1alpha1.ClusterCredential) (*rest.Config, error) {
	refuse := func(field, reason string) error {
		return &CredentialError{Cluster: cluster, Field: "spec.credential" + field, Reason: reason}
	}
	if cred.Server == "" {
		if cred.BearerToken == "" && cred.User == "" && cred.TLSClientConfig == nil {
			return nil, &CredentialError{Cluster: cluster, Field: "spec", Reason: "neither secretRef nor credential is set; set secretRef to a kubeconfig Secret, or credential.server and its credentials"}
		}
		return nil, refuse(".server", "not set")
	}
	if cred.BearerToken != "" && (cred.User != "" || cred.Password != "") {
		return nil, refuse("", "bearerToken and user/password are both set; keep one")
	}
	if cred.Password != "" && cred.User == "" {
		return nil, refuse(".user", "not set, but password is")
	}
	cfg := &rest.Config{
		Host:        cred.Server,
		BearerToken: cred.BearerToken,
		Username:    cred.User,
		Password:    cred.Password,
	}
	if tls := cred.TLSClientConfig; tls != nil {
		if tls.CAFile != "" {
			return nil, refuse(".tlsClientConfig.caFile", "file paths are refused: the controller reads none of its own files for an ExecutionCluster; put the PEM certificates in caData")
		}
		if tls.Insecure && len(tls.CAData) > 0 {
			return nil, refuse(".tlsClientConfig", "insecure and caData are both set; keep one")
		}
		cfg.Insecure = tls.Insecure
		cfg.CAData = tls.CAData
	}
	return cfg, nil
}

// kubeconfigREST checks the parts of raw its current context uses and
// turns them into a rest.Config. Errors name the offending field as
// field, sep and its path inside the kubeconfig.
func kubeconfigREST(cluster, field, sep string, raw *clientcmdapi.Config) (*rest.Config, error) {
	refuse := func(sub, reason string) error {
		return &CredentialError{Cluster: cluster, Field: field + sep + sub, Reason: reason}
	}
	if raw.CurrentContext == "" {
		return nil, refuse("current-context", "not set")
	}
	kctx := raw.Contexts[raw.CurrentContext]
	if kctx == nil {
		return nil, refuse("current-context", fmt.Sprintf("context %q not found", raw.CurrentContext))
	}
	c := raw.Clusters[kctx.Cluster]
	if c == nil {
		return nil, refuse(fmt.Sprintf("contexts[%s].cluster", raw.CurrentContext), fmt.Sprintf("cluster %q not found", kctx.Cluster))
	}
	if c.CertificateAuthority != "" {
		return nil, refuse(fmt.Sprintf("clusters[%s].certificate-authority", kctx.Cluster), "file paths are refused: the controller reads none of its own files for an ExecutionCluster; use certificate-authority-data")
	}
	if a := raw.AuthInfos[kctx.AuthInfo]; a != nil {
		user := func(sub string) string { return fmt.Sprintf("users[%s].%s", kctx.AuthInfo, sub) }
		files := "file paths are refused: the controller reads none of its own files for an ExecutionCluster; inline the credentials"
		switch {
		case a.Exec != nil:
			return nil, refuse(user("exec"), fmt.Sprintf("exec credential plugins (%s) are refused: the controller runs no programs named by an ExecutionCluster; use a token or a client certificate", a.Exec.Command))
		case a.AuthProvider != nil:
			return nil, refuse(user("auth-provider"), fmt.Sprintf("auth-provider plugins (%s) are refused; use a token or a client certificate", a.AuthProvider.Name))
		case a.TokenFile != "":
			return nil, refuse(user("tokenFile"), files)
		case a.ClientCertificate != "":
			return nil, refuse(user("client-certificate"), files)
		case a.ClientKey != "":
			return nil, refuse(user("client-key"), files)
		}
	}
	// Only the context checked above may be used: no overrides, no
	// fallback to the controller's own in-cluster config.
	cfg, err := clientcmd.NewNonInteractiveClientConfig(*raw, raw.CurrentContext, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, &CredentialError{Cluster: cluster, Field: field, Reason: err.Error()}
	}
	return cfg, nil
}

// decodeCycloneKubeconfig reads spec.credential.kubeConfig. Cyclone stores
// client-go's internal clientcmd Config there, whose clusters, users and
// contexts are maps keyed by name; a kubeconfig in the usual v1 shape
// (named lists, as kubectl writes it) is accepted too.
func decodeCycloneKubeconfig(data []byte) (*clientcmdapi.Config, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not a kubeconfig object: %w", err)
	}
	for _, key := range []string{"clusters", "users", "contexts"} {
		if v := bytes.TrimSpace(probe[key]); len(v) > 0 && v[0] == '[' {
			cfg, err := clientcmd.Load(data)
			if err != nil {
				return nil, fmt.Errorf("not a kubeconfig: %w", err)
			}
			return cfg, nil
		}
	}
	// Extensions hold runtime.Objects, which encoding/json cannot decode
	// and a client never needs, so they are dropped first.
	var generic map[string]any
	if err := json.Unmarshal(data, &generic); err != nil {
		return nil, err
	}
	dropExtensions(generic)
	clean, err := json.Marshal(generic)
	if err != nil {
		return nil, err
	}
	cfg := clientcmdapi.NewConfig()
	if err := json.Unmarshal(clean, cfg); err != nil {
		return nil, fmt.Errorf("not a kubeconfig in Cyclone's shape: %w", err)
	}
	return cfg, nil
}

// dropExtensions removes the extensions of a kubeconfig in the internal
// shape: at the top, in preferences, and in each cluster, user and context.
func dropExtensions(cfg map[string]any) {
	delete(cfg, "extensions")
	if p, ok := cfg["preferences"].(map[string]any); ok {
		delete(p, "extensions")
	}
	for _, key := range []string{"clusters", "users", "contexts"} {
		m, _ := cfg[key].(map[string]any)
		for _, entry := range m {
			if entry, ok := entry.(map[string]any); ok {
				delete(entry, "extensions")
			}
		}
	}
}

// isNull reports whether a raw JSON field holds nothing.
func isNull(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}
