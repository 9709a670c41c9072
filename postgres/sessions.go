package postgres

import (
	"context"
	"crypto/sha256"
	"errors"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
)

func sessionHash(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// CreateSession records a session under its random id (kept hashed) and
// removes expired ones.
func (s *Store) CreateSession(ctx context.Context, id string, sess flows.Session) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM flows.dashboard_sessions WHERE expires_at < now()`); err != nil {
		return translate(err, "sessions")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO flows.dashboard_sessions (id_hash, subject, role, esco, token_id, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, sessionHash(id), sess.Subject, sess.Role, sess.ESCO, sess.TokenID, sess.ExpiresAt)
	return translate(err, "session")
}

// Session returns the live session with id. EUNAUTHORIZED when there is
// none (never was, logged out, or expired).
func (s *Store) Session(ctx context.Context, id string) (*flows.Session, error) {
	var sess flows.Session
	err := s.pool.QueryRow(ctx, `SELECT subject, role, esco, token_id, expires_at FROM flows.dashboard_sessions
		WHERE id_hash = $1 AND expires_at > now()`, sessionHash(id)).Scan(&sess.Subject, &sess.Role, &sess.ESCO, &sess.TokenID, &sess.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, flows.Errorf(flows.EUNAUTHORIZED, "no session (logged out or expired): log in again")
	}
	if err != nil {
		return nil, translate(err, "session")
	}
	return &sess, nil
}

// DeleteSession ends a session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM flows.dashboard_sessions WHERE id_hash = $1`, sessionHash(id))
	return translate(err, "session")
}
