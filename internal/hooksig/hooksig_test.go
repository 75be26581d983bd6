package hooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return hex.EncodeToString(mac.Sum(nil))
}

func TestHMACSHA256(t *testing.T) {
	body := `{"ref":"refs/heads/main"}`
	for _, tc := range []struct {
		name, sig, prefix, secret string
		want                      bool
	}{
		{"A GitHub signature of the body under the secret is right.", "sha256=" + sign("s3cret", body), "sha256=", "s3cret", true},
		{"A bare hex signature, as Gitea sends, is right without a prefix.", sign("s3cret", body), "", "s3cret", true},
		{"A signature under another secret is wrong.", "sha256=" + sign("other", body), "sha256=", "s3cret", false},
		{"A signature without the expected prefix is wrong.", sign("s3cret", body), "sha256=", "s3cret", false},
		{"A missing signature is wrong.", "", "", "s3cret", false},
		{"A signature that is not hex is wrong.", "sha256=zz", "sha256=", "s3cret", false},
		{"An empty secret proves nothing, even signed with it.", "sha256=" + sign("", body), "sha256=", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(HMACSHA256(tc.sig, tc.prefix, []byte(body), []byte(tc.secret))).To(Equal(tc.want))
		})
	}
}

func TestTokenEqual(t *testing.T) {
	for _, tc := range []struct {
		name, token, secret string
		want                bool
	}{
		{"The secret itself is right.", "s3cret", "s3cret", true},
		{"Another token is wrong.", "s3cre", "s3cret", false},
		{"No token is wrong.", "", "s3cret", false},
		{"An empty secret proves nothing.", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(TokenEqual(tc.token, []byte(tc.secret))).To(Equal(tc.want))
		})
	}
}

func TestReadBody(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       string
		wantStatus int
	}{
		{"A body within the limit is read whole.", "0123456789", 0},
		{"A body over the limit is refused as too large.", "0123456789a", http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			req.ContentLength = -1 // as a chunked request: the reader must cap it
			body, status, err := ReadBody(httptest.NewRecorder(), req, 10)
			g.Expect(status).To(Equal(tc.wantStatus))
			if tc.wantStatus == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(string(body)).To(Equal(tc.body))
			} else {
				g.Expect(err).To(MatchError(ContainSubstring("larger than 10 bytes")))
			}
		})
	}
}
