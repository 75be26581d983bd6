package trigger

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/testcluster"
)

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	g := NewWithT(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gyre-webhook-test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	g.Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalECPrivateKey(key)
	g.Expect(err).NotTo(HaveOccurred())
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	g.Expect(os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)).To(Succeed())
	cert, err := x509.ParseCertificate(der)
	g.Expect(err).NotTo(HaveOccurred())
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestWebhookServer_serve(t *testing.T) {
	testcluster.Require(t)
	tests := []struct {
		name string
		tls  bool
	}{
		{name: "The server takes signed events over plain HTTP", tls: false},
		{name: "The server takes signed events over TLS when given a certificate", tls: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns, _ := newWebhookTest(t)
			opts := WebhookOptions{}
			httpClient := &http.Client{Timeout: 10 * time.Second}
			scheme := "http"
			if tt.tls {
				var pool *x509.CertPool
				opts.CertFile, opts.KeyFile, pool = selfSigned(t, t.TempDir())
				httpClient.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
				scheme = "https"
			}
			srv := NewWebhookServer(k8sClient, opts)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			g.Expect(err).NotTo(HaveOccurred())
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, ln) }()
			base := scheme + "://" + ln.Addr().String()

			g.Eventually(func(g Gomega) {
				resp, err := httpClient.Get(base + "/healthz")
				g.Expect(err).NotTo(HaveOccurred())
				resp.Body.Close()
				g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
			}).Should(Succeed())

			d := delivery{providerGitHub, "push", "over-the-wire", readPayload(t, "github-push.json"), "good", ""}
			req := d.request(ns)
			wire, err := http.NewRequest(http.MethodPost, base+req.URL.Path, bytes.NewReader(d.body))
			g.Expect(err).NotTo(HaveOccurred())
			wire.Header = req.Header
			resp, err := httpClient.Do(wire)
			g.Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			g.Expect(resp.StatusCode).To(Equal(http.StatusAccepted))
			g.Expect(listRuns(g, ns)).To(HaveLen(1))

			cancel()
			g.Expect(<-done).To(Succeed())
		})
	}
}
