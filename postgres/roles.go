package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SQL logins: database roles for the people and tools that query the
// flows schema directly (psql, Grafana, Tableau). Migration 0016 holds the
// role model: the NOLOGIN groups flows_readonly and flows_operator carry
// the privileges, flows_all_escos marks a login of every ESCO, and
// flows.sql_logins says which ESCO each login of this database may see;
// row-level security does the rest. The services' own role (the owner of
// the schema) is never one of these.

// SQLAccess is what a login may do: read, or also make the seed's
// tariff update.
type SQLAccess string

// The access levels of SQL logins.
const (
	SQLReadonly SQLAccess = "readonly" // SELECT on meter data (group flows_readonly)
	SQLOperator SQLAccess = "operator" // also UPDATE flows.meter_shadows SET tariffs_future (group flows_operator)
)

// sqlGroup is the group role of each access level.
var sqlGroup = map[SQLAccess]string{SQLReadonly: "flows_readonly", SQLOperator: "flows_operator"}

// sqlAllESCOs is the group of logins that see every ESCO's meters.
const sqlAllESCOs = "flows_all_escos"

// SQLLoginSpec describes a login to create.
type SQLLoginSpec struct {
	Name   string    // the role name: lower-case letters, digits and '_', at most 63
	Access SQLAccess // readonly or operator
	ESCO   string    // ESCO code (any case); "" for every ESCO
	// Password is the login's password; "" makes a random one. It never
	// reaches the server: only its SCRAM-SHA-256 verifier does.
	Password string
}

// SQLLogin is a login of this database (a row of flows.sql_logins).
type SQLLogin struct {
	Name      string    `json:"login"`
	Access    SQLAccess `json:"role"`
	ESCO      string    `json:"esco"` // code; "" for every ESCO
	CreatedAt time.Time `json:"created_at"`
}

var loginNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidateLoginName says whether name may be a login's name. EINVALID
// naming "login" when not.
func ValidateLoginName(name string) error {
	switch {
	case !loginNameRE.MatchString(name):
		return flows.FieldError("login", "%q is not a login name: 1-63 lower-case letters, digits or '_', not starting with a digit", name)
	case strings.HasPrefix(name, "pg_"):
		return flows.FieldError("login", "%q: names starting with pg_ are PostgreSQL's", name)
	case name == "flows_readonly" || name == "flows_operator" || name == sqlAllESCOs || name == "public":
		return flows.FieldError("login", "%q is reserved (a group role of Flows, or PUBLIC)", name)
	}
	return nil
}

// GrantSQLLogin creates a login role for a person or tool: a member of
// the access level's group, limited to one ESCO's meters in this database
// (or seeing every ESCO's when spec.ESCO is ""). It returns the password
// (spec.Password, or a random one), which is stored nowhere in the clear.
// Errors: EINVALID naming "login", "role" or "password"; ENOTFOUND naming
// "esco"; ECONFLICT when a role of that name exists; EFORBIDDEN when the
// store's role may not create roles (it needs CREATEROLE).
func (s *Store) GrantSQLLogin(ctx context.Context, spec SQLLoginSpec) (string, error) {
	if err := ValidateLoginName(spec.Name); err != nil {
		return "", err
	}
	group, ok := sqlGroup[spec.Access]
	if !ok {
		return "", flows.FieldError("role", "%q is not readonly or operator", spec.Access)
	}
	password := spec.Password
	if password == "" {
		raw := make([]byte, 24)
		_, _ = rand.Read(raw) // never fails (crypto/rand)
		password = base64.RawURLEncoding.EncodeToString(raw)
	} else if len(password) < 16 || strings.ContainsAny(password, "'\\\x00") {
		return "", flows.FieldError("password", "at least 16 characters, without quotes, backslashes or NUL")
	}
	verifier, err := scramVerifier(password)
	if err != nil {
		return "", err
	}
	groups := group
	if spec.ESCO == "" {
		groups += ", " + sqlAllESCOs
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var esco *string
		if spec.ESCO != "" {
			var id string
			err := tx.QueryRow(ctx, `SELECT id FROM flows.escos WHERE lower(code) = lower($1)`, spec.ESCO).Scan(&id)
			if errors.Is(err, pgx.ErrNoRows) {
				return &flows.Error{Code: flows.ENOTFOUND, Field: "esco", Message: fmt.Sprintf("no ESCO has the code %q", spec.ESCO)}
			} else if err != nil {
				return translate(err, "esco")
			}
			esco = &id
		}
		// DDL takes no parameters: the name is validated and quoted, the
		// verifier is base64 and punctuation only.
		ddl := fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s' IN ROLE %s`, pgx.Identifier{spec.Name}.Sanitize(), verifier, groups)
		if _, err := tx.Exec(ctx, ddl); err != nil {
			return roleError(err, spec.Name)
		}
		if spec.Access == SQLReadonly {
			// Belt and braces: its privileges refuse every write anyway.
			if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER ROLE %s SET default_transaction_read_only = on`, pgx.Identifier{spec.Name}.Sanitize())); err != nil {
				return roleError(err, spec.Name)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO flows.sql_logins (role_name, role_oid, access, esco)
			SELECT rolname, oid, $2, $3 FROM pg_roles WHERE rolname = $1`, spec.Name, string(spec.Access), esco)
		return translate(err, "sql login")
	})
	if err != nil {
		return "", err
	}
	return password, nil
}

// RevokeSQLLogin removes a login: its row here and the role itself (roles
// are the cluster's: it can then connect to no database), and ends its
// open sessions where the store's role may. It returns how many sessions
// are still open (0 unless the store's role may not end them: they keep
// no privilege, and end when they disconnect). ENOTFOUND naming "login"
// when there is no such role; EINVALID when the role is not a Flows login
// (it is left alone); EFORBIDDEN without the privilege to drop it.
func (s *Store) RevokeSQLLogin(ctx context.Context, name string) (int, error) {
	if err := ValidateLoginName(name); err != nil {
		return 0, err
	}
	var oid uint32
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM flows.sql_logins WHERE role_name = $1`, name)
		if err != nil {
			return translate(err, "sql login")
		}
		var ours bool
		err = tx.QueryRow(ctx, `SELECT r.oid, EXISTS (
				SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
				WHERE m.member = r.oid AND g.rolname IN ('flows_readonly', 'flows_operator'))
			FROM pg_roles r WHERE r.rolname = $1`, name).Scan(&oid, &ours)
		switch {
		case errors.Is(err, pgx.ErrNoRows) && tag.RowsAffected() > 0:
			return nil // dropped already (from another database of the cluster)
		case errors.Is(err, pgx.ErrNoRows):
			return &flows.Error{Code: flows.ENOTFOUND, Field: "login", Message: fmt.Sprintf("no login called %q", name)}
		case err != nil:
			return translate(err, "login")
		case !ours:
			return flows.FieldError("login", "role %q is not a Flows login (not a member of flows_readonly or flows_operator); it is left alone", name)
		}
		if _, err := tx.Exec(ctx, `DROP ROLE `+pgx.Identifier{name}.Sanitize()); err != nil {
			return roleError(err, name)
		}
		return nil
	})
	if err != nil || oid == 0 {
		return 0, err
	}
	// After the commit, so no new session can start meanwhile. Ending
	// another role's session needs pg_signal_backend (or superuser).
	var open int
	err = s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT ended) FROM (
			SELECT coalesce(pg_terminate_backend(pid, 5000), false) AS ended
			FROM pg_stat_activity WHERE usesysid = $1) x`, oid).Scan(&open)
	if err != nil {
		// Not allowed to signal: count what stays open.
		if qerr := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE usesysid = $1`, oid).Scan(&open); qerr != nil {
			return 0, translate(qerr, "sessions")
		}
	}
	return open, nil
}

// SQLLogins lists the logins granted in this database, by name.
func (s *Store) SQLLogins(ctx context.Context) ([]SQLLogin, error) {
	rows, err := s.pool.Query(ctx, `SELECT l.role_name, l.access, coalesce(e.code, ''), l.created_at
		FROM flows.sql_logins l LEFT JOIN flows.escos e ON e.id = l.esco ORDER BY 1`)
	if err != nil {
		return nil, translate(err, "sql logins")
	}
	return collect(rows, "sql logins", func(r pgx.Row) (*SQLLogin, error) {
		var l SQLLogin
		var access string
		err := r.Scan(&l.Name, &access, &l.ESCO, &l.CreatedAt)
		l.Access = SQLAccess(access)
		return &l, err
	})
}

// roleError translates the errors of role DDL.
func roleError(err error, name string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42710": // duplicate_object
			return &flows.Error{Code: flows.ECONFLICT, Field: "login",
				Message: fmt.Sprintf("a database role called %q exists already (roles belong to the whole cluster); revoke it or choose another name", name)}
		case "42501": // insufficient_privilege
			return flows.Errorf(flows.EFORBIDDEN, "the database role of --database-url may not manage logins (it needs CREATEROLE): %s", pgErr.Message)
		case "2BP01": // dependent_objects_still_exist
			return flows.Errorf(flows.EINVALID, "login %q owns objects or holds privileges of its own (%s): drop them first (DROP OWNED BY %s, in each database)", name, pgErr.Detail, name)
		}
	}
	return fmt.Errorf("login %s: %w", name, err)
}

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (RFC 5802, RFC 7677; the form of pg_authid.rolpassword), so
// that the password itself is never sent to the server or written to its
// logs.
func scramVerifier(password string) (string, error) {
	const iterations = 4096 // PostgreSQL's default scram_iterations
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}

// LoginURL returns databaseURL (a postgres:// URL or a key=value
// connection string) for login with password: the same server, database
// and TLS settings, without the services' own user, password or pool
// settings. EINVALID naming "--database-url" when it cannot be parsed.
func LoginURL(databaseURL, login, password string) (string, error) {
	cfg, err := pgconn.ParseConfig(databaseURL)
	if err != nil {
		return "", flows.FieldError("--database-url", "%v", err)
	}
	q := url.Values{}
	if u, err := url.Parse(databaseURL); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		for k, vs := range u.Query() {
			if k != "user" && k != "password" && k != "passfile" && !strings.HasPrefix(k, "pool_") {
				q[k] = vs
			}
		}
	} else if cfg.TLSConfig == nil {
		q.Set("sslmode", "disable") // a key=value string: keep at least "no TLS"
	}
	out := url.URL{Scheme: "postgres", User: url.UserPassword(login, password), Path: "/" + cfg.Database}
	switch {
	case strings.HasPrefix(cfg.Host, "/"): // a Unix socket directory
		q.Set("host", cfg.Host)
		q.Set("port", fmt.Sprint(cfg.Port))
	case strings.Contains(cfg.Host, ":"): // IPv6
		out.Host = fmt.Sprintf("[%s]:%d", cfg.Host, cfg.Port)
	default:
		out.Host = fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	}
	out.RawQuery = q.Encode()
	return out.String(), nil
}
