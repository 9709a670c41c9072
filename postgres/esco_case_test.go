package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/postgres"
)

// ESCO codes are unique whatever their case: a second "other" is refused
// beside "OTHER", naming the field, and nothing is written.
func TestESCOCodesUniqueCaseInsensitively(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateESCO(ctx, "OTHER", "Other Energy"); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateESCO(ctx, "other", "Impostor")
	if flows.ErrorCode(err) != flows.ECONFLICT || flows.ErrorField(err) != "code" {
		t.Errorf("lower-case twin of an ESCO code: %v", err)
	}
	var n int
	_ = s.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.escos WHERE lower(code) = 'other'`).Scan(&n)
	if n != 1 {
		t.Errorf("%d ESCOs called other", n)
	}
}

// A database that already holds codes differing only in case is refused
// by the migration with a message naming them.
func TestESCOCaseMigrationNamesClashes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Pool().Exec(ctx, `DROP INDEX flows.escos_code_lower_key;
		INSERT INTO flows.escos (code, name) VALUES ('WLCE', 'a'), ('wlce', 'b')`); err != nil {
		t.Fatal(err)
	}
	ms, err := postgres.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name != "esco_code_case" {
			continue
		}
		_, err := s.Pool().Exec(ctx, m.SQL)
		if err == nil || !strings.Contains(err.Error(), "WLCE, wlce") {
			t.Errorf("migration over a clash: %v", err)
		}
		return
	}
	t.Fatal("no esco_code_case migration")
}
