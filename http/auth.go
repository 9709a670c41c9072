// Package http serves the operator API and dashboard, and issues and checks
// the JWT bearer tokens that authorise them.
package http

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/golang-jwt/jwt/v5"
)

// Role is what a token holder may do.
type Role string

// Roles, from least to most privileged.
const (
	RoleReadonly Role = "readonly" // reads
	RoleOperator Role = "operator" // reads, tariffs, tokens, sync, flags
	RoleAdmin    Role = "admin"    // everything, including registry changes
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleReadonly || r == RoleOperator || r == RoleAdmin }

// Claims are the claims of a Flows token: sub, role, optional esco (code)
// limiting every read and write to that ESCO's meters, and exp.
type Claims struct {
	Role Role   `json:"role"`
	ESCO string `json:"esco,omitempty"`
	jwt.RegisteredClaims
}

// MinSecretLen is the shortest HS256 secret accepted (256 bits).
const MinSecretLen = 32

// IssueToken signs a token for subject with role, optional ESCO code and
// lifetime. EINVALID names a bad role or a short secret.
func IssueToken(secret []byte, subject string, role Role, esco string, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) < MinSecretLen {
		return "", flows.FieldError("secret", "must be at least %d bytes", MinSecretLen)
	}
	if !role.Valid() {
		return "", flows.FieldError("role", "%q is not admin, operator or readonly", role)
	}
	if subject == "" {
		return "", flows.FieldError("sub", "required")
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	c := Claims{Role: role, ESCO: esco, RegisteredClaims: jwt.RegisteredClaims{
		ID:        hex.EncodeToString(jti), // names the token in sessions and logs
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// ParseToken verifies a token's signature (HS256 only), expiry and role.
// Every failure is EUNAUTHORIZED with a reason safe to show.
func ParseToken(secret []byte, token string, now time.Time) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return now }))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, flows.Errorf(flows.EUNAUTHORIZED, "token expired")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, flows.Errorf(flows.EUNAUTHORIZED, "token signature invalid")
	case err != nil:
		return nil, flows.Errorf(flows.EUNAUTHORIZED, "token invalid: %v", shortJWTError(err))
	}
	if !c.Role.Valid() {
		return nil, flows.Errorf(flows.EUNAUTHORIZED, "token role %q unknown", c.Role)
	}
	if strings.TrimSpace(c.Subject) == "" {
		// Every write is audited by who asked: a token must say who.
		return nil, flows.Errorf(flows.EUNAUTHORIZED, "token has no subject (sub)")
	}
	return &c, nil
}

func shortJWTError(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "expiry missing"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "signature not verifiable"
	}
	return fmt.Sprint(err)
}
