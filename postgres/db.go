// Package postgres stores the meter domain in PostgreSQL (schema "flows")
// through pgx. It owns the migrations (embedded, numbered, applied under an
// advisory lock) and translates driver errors into flows error codes where
// they happen: no pgx type crosses into the domain.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/flows-energy/flows"
	pgxdecimal "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Open connects a pool to url and registers the decimal type so numeric
// columns scan into decimal.Decimal (never float). The pool holds at most
// 40 connections unless url says (pool_max_conns).
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) { return OpenSized(ctx, url, 40) }

// OpenSized is Open with a pool of at most maxConns connections unless url
// names its own pool_max_conns (an operator's choice wins).
func OpenSized(ctx context.Context, url string, maxConns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, flows.Errorf(flows.EINVALID, "database URL: %v", err)
	}
	// pgxpool defaults to max(4, CPUs) connections; the sync engine runs
	// dozens of meter syncs at once, each a short transaction.
	if !HasPoolSize(url) {
		cfg.MaxConns = int32(max(maxConns, 1))
	}
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		pgxdecimal.Register(conn.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		// pgx names every address it tried, each with the whole dial
		// error: the innermost cause says it once.
		cause := innermost(err)
		return nil, flows.Errorf(flows.EUNAVAILABLE, "database %s:%d unreachable (%v): is PostgreSQL running there, and is the database URL (--database-url, FLOWS_DATABASE_URL) right?",
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, cause)
	}
	return pool, nil
}

// innermost is the network error under err, else the first cause at the
// bottom of its chain (through joined errors too: pgx joins one error per
// address it tried).
func innermost(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op // "dial tcp HOST:PORT: connect: connection refused"
	}
	for {
		if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
			err = j.Unwrap()[0]
		} else if u := errors.Unwrap(err); u != nil {
			err = u
		} else {
			return err
		}
	}
}

// HasPoolSize says whether url sets its own pool size (pool_max_conns).
func HasPoolSize(url string) bool { return strings.Contains(url, "pool_max_conns") }

// FreeConnections is how many more client connections the server accepts
// now: max_connections less the slots reserved for superusers (and, from
// PostgreSQL 16, for reserved_connections' roles) and the client
// connections open (every database's, every node's).
func FreeConnections(ctx context.Context, pool *pgxpool.Pool) (free, maxConns int, err error) {
	err = pool.QueryRow(ctx, `SELECT current_setting('max_connections')::int,
		current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
		- coalesce(current_setting('reserved_connections', true)::int, 0)
		- (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int`).Scan(&maxConns, &free)
	return free, maxConns, translate(err, "connection limit")
}

// constraintFields maps constraint names to the field and message a user
// should see.
var constraintFields = map[string][2]string{
	"meter_registry_serial_key":                  {"serial", "a meter with this serial already exists"},
	"meter_registry_serial_format":               {"serial", "not a meter serial (" + flows.SerialPattern + ")"},
	"meter_registry_ip_address_key":              {"ip_address", "another meter already has this IP address"},
	"meter_registry_port_range":                  {"port", "not a TCP port (1-65535)"},
	"meter_registry_iccid_key":                   {"iccid", "another meter already has this ICCID"},
	"meter_registry_esco_fkey":                   {"esco", "no such ESCO"},
	"escos_code_key":                             {"code", "an ESCO with this code already exists"},
	"escos_code_lower_key":                       {"code", "an ESCO with this code already exists (codes are not case-sensitive)"},
	"escos_code_format":                          {"code", "ESCO codes are 1-32 letters, digits, '-' or '_'"},
	"meter_shadows_csq_range":                    {"csq", "must be between 0 and 31"},
	"meter_shadows_emergency_credit_nonnegative": {"emergency_credit", "must not be negative"},
	"meter_shadows_tariffs_active_shape":         {"tariffs_active", "must be a tariff object with decimal amounts"},
	"meter_shadows_tariffs_future_shape":         {"tariffs_future", "must be a tariff object with decimal amounts"},
	"meter_registers_one_enabled_per_element":    {"element", "the meter already has an enabled register for this element"},
	"meter_registers_element_layout":             {"element", "a meter cannot have both SINGLE and A/B registers"},
}

// collect scans every row with scan, closing rows; errors are translated
// and named after what.
func collect[T any](rows pgx.Rows, what string, scan func(pgx.Row) (*T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, translate(err, what)
		}
		out = append(out, *v)
	}
	return out, translate(rows.Err(), what)
}

// translate turns driver errors into flows errors: no rows → ENOTFOUND,
// constraint violations → EINVALID/ECONFLICT naming the field.
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return flows.Errorf(flows.ENOTFOUND, "%s not found", what)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		f, known := constraintFields[pgErr.ConstraintName]
		switch pgErr.Code {
		case "23505": // unique_violation
			if known {
				return &flows.Error{Code: flows.ECONFLICT, Field: f[0], Message: f[1]}
			}
			return flows.Errorf(flows.ECONFLICT, "%s already exists", what)
		case "23514", "23503", "23502": // check, foreign key, not null
			if known {
				return &flows.Error{Code: flows.EINVALID, Field: f[0], Message: f[1]}
			}
			if pgErr.ColumnName != "" {
				return &flows.Error{Code: flows.EINVALID, Field: pgErr.ColumnName, Message: "required"}
			}
			return flows.Errorf(flows.EINVALID, "%s: %s", what, pgErr.Message)
		case "22P02": // invalid_text_representation (bad enum, uuid)
			return flows.Errorf(flows.EINVALID, "%s: %s", what, strings.TrimPrefix(pgErr.Message, "invalid input syntax for "))
		case "22007", "22008", "22009", "22003": // bad datetime, out of range, time zone, numeric out of range
			return flows.Errorf(flows.EINVALID, "%s: %s", what, pgErr.Message)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}
