package http_test

import (
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestTokenRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tok, err := flowshttp.IssueToken(secret, "alice", flowshttp.RoleOperator, "WLCE", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := flowshttp.ParseToken(secret, tok, now.Add(59*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.Role != flowshttp.RoleOperator || c.ESCO != "WLCE" {
		t.Errorf("claims = %+v", c)
	}
}

func TestTokenRejections(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	good, _ := flowshttp.IssueToken(secret, "alice", flowshttp.RoleAdmin, "", time.Hour, now)
	other, _ := flowshttp.IssueToken([]byte("another-secret-another-secret-xx"), "alice", flowshttp.RoleAdmin, "", time.Hour, now)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, flowshttp.Claims{Role: "admin", RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	badRole, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, flowshttp.Claims{Role: "god", RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}).SignedString(secret)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, flowshttp.Claims{Role: "admin"}).SignedString(secret)
	for _, c := range []struct{ name, tok, want string }{
		{"expired", good, "expired"},
		{"wrong secret", other, "signature"},
		{"alg none", noneTok, "invalid"},
		{"garbage", "not.a.token", "malformed"},
		{"unknown role", badRole, "role"},
		{"no expiry", noExp, "expiry"},
	} {
		at := now
		if c.name == "expired" {
			at = now.Add(2 * time.Hour)
		}
		_, err := flowshttp.ParseToken(secret, c.tok, at)
		if flows.ErrorCode(err) != flows.EUNAUTHORIZED || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want unauthorized mentioning %q", c.name, err, c.want)
		}
	}
	if _, err := flowshttp.IssueToken(secret, "bob", "root", "", time.Hour, now); flows.ErrorField(err) != "role" {
		t.Errorf("issue with bad role: %v", err)
	}
	if _, err := flowshttp.IssueToken([]byte("short"), "bob", "admin", "", time.Hour, now); flows.ErrorField(err) != "secret" {
		t.Errorf("issue with short secret: %v", err)
	}
}
