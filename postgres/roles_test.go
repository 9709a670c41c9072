package postgres_test

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgembed"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	pgxdecimal "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var loginSeq atomic.Int64

// uniqueLogin names a login no other test of any process on the cluster
// uses: roles are the cluster's, and the tests run in parallel.
func uniqueLogin(what string) string {
	return fmt.Sprintf("t_%s_%d_%d", what, os.Getpid(), loginSeq.Add(1))
}

// grantLogin creates a login through the store and connects as it; both
// are undone when t ends.
func grantLogin(t *testing.T, store *postgres.Store, dbURL string, access postgres.SQLAccess, esco string) (*pgx.Conn, string) {
	t.Helper()
	ctx := context.Background()
	name := uniqueLogin(string(access))
	password, err := store.GrantSQLLogin(ctx, postgres.SQLLoginSpec{Name: name, Access: access, ESCO: esco})
	if err != nil {
		t.Fatalf("grant %s: %v", name, err)
	}
	t.Cleanup(func() { _, _ = store.RevokeSQLLogin(context.Background(), name) })
	u, err := postgres.LoginURL(dbURL, name, password)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	pgxdecimal.Register(conn.TypeMap()) // numeric as the owner's pool reads it
	return conn, name
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// queryRows runs sql on q and returns its rows as sorted strings, leaving
// out the columns computed from now() (they differ between two sessions).
func queryRows(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string) []string {
	t.Helper()
	rows, err := q.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s\n: %v", sql, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for i, f := range rows.FieldDescriptions() {
			if f.Name != "minutes_offline" {
				parts = append(parts, fmt.Sprintf("%s=%v", f.Name, vals[i]))
			}
		}
		out = append(out, strings.Join(parts, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s\n: %v", sql, err)
	}
	slices.Sort(out)
	return out
}

// onlyESCO returns what the owner gets from sql in a database holding
// only esco's meters: the meters of every other ESCO (and of none) are
// deleted, with everything that is theirs, in a transaction rolled back.
// It is the oracle of what a login limited to esco must see.
func onlyESCO(t *testing.T, pool *pgxpool.Pool, esco, sql string) []string {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `DELETE FROM flows.meter_registry WHERE esco IS DISTINCT FROM $1`, esco); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM flows.escos WHERE id <> $1`, esco); err != nil {
		t.Fatal(err)
	}
	return queryRows(t, tx, sql)
}

// addOtherESCOData gives the seed fixture's second ESCO (HMCE) rows for
// every seed query: a low balance, a meter recently offline, balance
// history.
func addOtherESCOData(t *testing.T, pool *pgxpool.Pool, f seedFixture) (hmceMeter string) {
	t.Helper()
	hmceMeter = mustID(t, pool, `SELECT id FROM flows.meter_registry WHERE serial = 'EML2137589999'`)
	quiet := mustID(t, pool, `INSERT INTO flows.meter_registry (serial, name, ip_address, mode, esco, hardware)
		VALUES ('EML2137589998', 'Hill 02', '10.9.0.2', 'active', $1, 'C1.w') RETURNING id`, f.otherESCO)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET balance = 2.5, emergency_credit = 15, health = 'healthy', csq = 17 WHERE id = $1`, hmceMeter)
	mustExec(t, pool, `INSERT INTO flows.meter_csq (meter_id, "timestamp", csq) VALUES ($1, $2, 11), ($1, $3, NULL)`,
		quiet, f.now.Add(-4*time.Hour), f.now.Add(-time.Hour))
	mustExec(t, pool, `INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance, emergency_credit)
		SELECT $1, $2::timestamptz - k * interval '1 hour', 30 - k * 0.01, 15 FROM generate_series(1, 40 * 24) k`, hmceMeter, f.now)
	return hmceMeter
}

// Every SQL example of the seed, verbatim, run by a login limited to one
// ESCO returns exactly what the owner gets from a database holding only
// that ESCO's meters, with the placeholders filled with either ESCO's ids;
// a login of every ESCO gets what the owner gets.
func TestSeedSQLUnderESCOLogins(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDB(t)
	pool := openPool(t, dbURL)
	store := postgres.NewStore(pool)
	f := loadSeedFixture(t, pool)
	hmceMeter := addOtherESCOData(t, pool, f)
	wlce, _ := grantLogin(t, store, dbURL, postgres.SQLReadonly, "WLCE")
	hmce, _ := grantLogin(t, store, dbURL, postgres.SQLReadonly, "hmce") // codes in any case
	all, _ := grantLogin(t, store, dbURL, postgres.SQLReadonly, "")

	fills := map[string]*strings.Replacer{
		"WLCE": strings.NewReplacer("{{esco_id}}", f.esco, "{{meter_id}}", f.statusMeter),
		"HMCE": strings.NewReplacer("{{esco_id}}", f.otherESCO, "{{meter_id}}", hmceMeter),
	}
	logins := []struct {
		name string
		conn *pgx.Conn
		esco string
	}{{"WLCE", wlce, f.esco}, {"HMCE", hmce, f.otherESCO}}
	for i, block := range seedSQL(t) {
		seen := map[string]int{}
		for fillName, fill := range fills {
			sql := fill.Replace(block)
			owner := queryRows(t, pool, sql)
			if got := queryRows(t, all, sql); !slices.Equal(got, owner) {
				t.Errorf("seed query %d (%s's ids) as a login of every ESCO: %s", i+1, fillName, rowsDiff(got, owner))
			}
			for _, l := range logins {
				got := queryRows(t, l.conn, sql)
				if want := onlyESCO(t, pool, l.esco, sql); !slices.Equal(got, want) {
					t.Errorf("seed query %d (%s's ids) as %s's login: %s\n%s", i+1, fillName, l.name, rowsDiff(got, want), sql)
				}
				// The fleet-wide queries hold both ESCOs' meters for the owner.
				if !strings.Contains(block, "{{") && !strings.Contains(block, "EML2137580826") && len(got) >= len(owner) {
					t.Errorf("seed query %d as %s's login returned %d rows, the owner %d: no other ESCO's row left out", i+1, l.name, len(got), len(owner))
				}
				seen[l.name] += len(got)
			}
		}
		// The fixture gives both ESCOs rows for every query but the
		// status of one WLCE meter, named in the seed.
		for _, l := range logins {
			if seen[l.name] == 0 && !(l.name == "HMCE" && strings.Contains(block, "EML2137580826")) {
				t.Errorf("seed query %d returned no row to %s's login: the test would not notice a leak", i+1, l.name)
			}
		}
	}
}

// rowsDiff says how got differs from want.
func rowsDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("%d rows, want %d; row %d is\n  %s\nwant\n  %s", len(got), len(want), i, got[i], want[i])
		}
	}
	return fmt.Sprintf("%d rows, want %d (%q, want %q)", len(got), len(want), got, want)
}

func openPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// seedTariffUpdate is the seed's "Update Meter Tariff" step 1 with its
// tariff JSON, activation moved into the future (the trigger refuses a
// past one).
func seedTariffUpdate(meterID string) string {
	return `UPDATE flows.meter_shadows SET tariffs_future = '{
  "standing_charge": 0.5868,
  "unit_rate_element_a": 0.2843,
  "unit_rate_element_b": 0.1500,
  "prepayment_ecredit_availability": 10.00,
  "prepayment_debt_recovery_rate": 0.25,
  "prepayment_emergency_credit": 15.00,
  "activation_datetime": "` + strconv.Itoa(time.Now().Year()+1) + `-10-01T00:00:00"
}' WHERE id = '` + meterID + `'`
}

// A read-only login writes nothing: every write is refused by its
// privileges (not only by its read-only default, which it may turn off),
// and what is withheld is not readable either.
func TestReadonlyLoginRefusesWrites(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDB(t)
	pool := openPool(t, dbURL)
	store := postgres.NewStore(pool)
	f := loadSeedFixture(t, pool)
	reg := mustID(t, pool, `INSERT INTO flows.meter_registers (meter_id, element) VALUES ($1, 'A') RETURNING register_id`, f.statusMeter)
	conn, _ := grantLogin(t, store, dbURL, postgres.SQLReadonly, "WLCE")
	ctx := context.Background()

	if _, err := conn.Exec(ctx, seedTariffUpdate(f.statusMeter)); sqlState(err) != "25006" {
		t.Errorf("the seed's tariff update in the login's default transaction: %v, want read-only transaction (25006)", err)
	}
	if _, err := conn.Exec(ctx, `SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE`); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		seedTariffUpdate(f.statusMeter),
		`UPDATE flows.meter_shadows SET balance = 100 WHERE id = '` + f.statusMeter + `'`,
		`INSERT INTO flows.meter_registry (serial, esco) VALUES ('EML2137581111', '` + f.esco + `')`,
		`UPDATE flows.meter_registry SET name = 'x' WHERE id = '` + f.statusMeter + `'`,
		`DELETE FROM flows.meter_prepay_balance WHERE meter_id = '` + f.statusMeter + `'`,
		`INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance) VALUES ('` + f.statusMeter + `', now(), 1)`,
		`INSERT INTO flows.topups (meter_id, token, amount) VALUES ('` + f.statusMeter + `', '12345678901234567890', 10)`,
		`INSERT INTO flows.tariff_requests (meter_id, tariff, activation_at) VALUES ('` + f.statusMeter + `', '{}', now() + interval '2 days')`,
		`UPDATE flows.escos SET name = 'x'`,
		`DELETE FROM flows.meter_event_log`,
		`TRUNCATE flows.meter_csq`,
		`INSERT INTO flows.sql_logins (role_name, role_oid, access) VALUES (current_user, 0, 'operator')`,
		`SELECT flows.derive_register_intervals('` + f.statusMeter + `', now() - interval '1 day', now())`,
		`UPDATE flows.meter_metrics SET enabled = false`,
		`CREATE TABLE flows.mine (x int)`,
		`CREATE VIEW flows.mine AS SELECT 1`,
		// Withheld: secrets and internals.
		`SELECT token FROM flows.topups`,
		`SELECT * FROM flows.dashboard_sessions`,
		`SELECT * FROM flows.meter_write_audit`,
		`SELECT * FROM flows.shadow_outbox`,
		`SELECT * FROM flows.replica_cursor`,
		`SELECT * FROM flows.schema_migrations`,
		`SELECT * FROM flows_queue.river_job`,
		// A partition, around its table's policy.
		`SELECT * FROM flows.` + partitionOf(t, pool, "meter_prepay_balance"),
	} {
		if _, err := conn.Exec(ctx, sql); sqlState(err) != "42501" {
			t.Errorf("%s\n= %v, want permission denied (42501)", sql, err)
		}
	}
	// What it may read.
	for _, sql := range []string{
		`SELECT id, meter_id, amount, status FROM flows.topups`,
		`SELECT * FROM flows.register_interval_hh WHERE register_id = '` + reg + `'`,
		`SELECT * FROM flows.meter_interval_completeness`,
		`SELECT * FROM flows.register_interval_hh_missing LIMIT 1`,
		`SELECT * FROM flows.get_meters_for_cli()`,
		`SELECT * FROM flows.tariff_requests`,
		`SELECT * FROM flows.meter_event_log_type`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Errorf("%s\n= %v, want it readable", sql, err)
		}
	}
	var balance string
	if err := pool.QueryRow(ctx, `SELECT balance::text FROM flows.meter_shadows WHERE id = $1`, f.statusMeter).Scan(&balance); err != nil || balance != "12.34000" {
		t.Errorf("balance after the refused writes = %s (%v), want 12.34000", balance, err)
	}
}

// partitionOf returns one partition of a partitioned history table.
func partitionOf(t *testing.T, pool *pgxpool.Pool, table string) string {
	t.Helper()
	var name string
	err := pool.QueryRow(context.Background(), `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass ORDER BY 1 LIMIT 1`, "flows."+table).Scan(&name)
	if err != nil {
		t.Skipf("%s is not partitioned here: %v", table, err)
	}
	return name
}

// An operator login's seed tariff update creates a request for its own
// ESCO's meter, naming the login; for another ESCO's meter it is refused
// and says why; the services' markers are not the login's to set.
func TestOperatorLoginTariffUpdate(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDB(t)
	pool := openPool(t, dbURL)
	store := postgres.NewStore(pool)
	f := loadSeedFixture(t, pool)
	other := mustID(t, pool, `SELECT id FROM flows.meter_registry WHERE serial = 'EML2137589999'`)
	conn, login := grantLogin(t, store, dbURL, postgres.SQLOperator, "WLCE")
	ctx := context.Background()

	tag, err := conn.Exec(ctx, seedTariffUpdate(f.statusMeter))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("the seed's tariff update on its own ESCO's meter: %v %v", tag, err)
	}
	var status, by string
	if err := pool.QueryRow(ctx, `SELECT status::text, requested_by FROM flows.tariff_requests WHERE meter_id = $1`, f.statusMeter).Scan(&status, &by); err != nil {
		t.Fatalf("no request recorded: %v", err)
	}
	if status != "pending" || by != login {
		t.Errorf("request status %s, requested_by %q; want pending, %q", status, by, login)
	}
	// The login reads its request back.
	if n := countOn(t, conn, `SELECT count(*) FROM flows.tariff_requests`); n != 1 {
		t.Errorf("the login sees %d tariff requests, want its 1", n)
	}

	_, err = conn.Exec(ctx, seedTariffUpdate(other))
	if sqlState(err) != "42501" || !strings.Contains(err.Error(), "only the meters of ESCO WLCE") {
		t.Errorf("the seed's tariff update on another ESCO's meter = %v, want refused naming the login's ESCO", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.tariff_requests WHERE meter_id = $1`, other); n != 0 {
		t.Errorf("%d requests recorded for another ESCO's meter", n)
	}
	// A validation refusal reaches the login as it reaches the owner.
	_, err = conn.Exec(ctx, `UPDATE flows.meter_shadows SET tariffs_future = '{"standing_charge": 2}' WHERE id = '`+f.statusMeter+`'`)
	if err == nil || !strings.Contains(err.Error(), "tariffs_future") {
		t.Errorf("an invalid tariff = %v, want the trigger's refusal naming tariffs_future", err)
	}
	for _, set := range []string{`SET flows.writer = 'sync'`, `SET flows.writer = 'replica'`, `SET flows.rollout_id = '` + f.statusMeter + `'`} {
		if _, err := conn.Exec(ctx, set); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, seedTariffUpdate(f.statusMeter)); sqlState(err) != "42501" {
			t.Errorf("after %s the tariff update = %v, want refused", set, err)
		}
		if _, err := conn.Exec(ctx, `RESET flows.writer; RESET flows.rollout_id`); err != nil {
			t.Fatal(err)
		}
	}
	for _, sql := range []string{
		`UPDATE flows.meter_shadows SET balance = 100 WHERE id = '` + f.statusMeter + `'`,
		`UPDATE flows.meter_shadows SET tariffs_active = tariffs_future WHERE id = '` + f.statusMeter + `'`,
		`UPDATE flows.tariff_requests SET status = 'pending'`,
		`INSERT INTO flows.topups (meter_id, token, amount) VALUES ('` + f.statusMeter + `', '12345678901234567890', 10)`,
	} {
		if _, err := conn.Exec(ctx, sql); sqlState(err) != "42501" {
			t.Errorf("%s\n= %v, want permission denied (42501)", sql, err)
		}
	}

	// A login of every ESCO changes any meter.
	all, _ := grantLogin(t, store, dbURL, postgres.SQLOperator, "")
	if tag, err := all.Exec(ctx, seedTariffUpdate(other)); err != nil || tag.RowsAffected() != 1 {
		t.Errorf("the seed's tariff update by an operator of every ESCO: %v %v", tag, err)
	}
}

// An operator's SQL login makes and changes its own ESCO's alert rules
// (created_by its login) and sees them, not another ESCO's; it cannot
// make one for another ESCO, read a rule's secret, or write episodes; a
// reader's login makes none.
func TestOperatorLoginConfiguresAlertRules(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDB(t)
	pool := openPool(t, dbURL)
	store := postgres.NewStore(pool)
	loadSeedFixture(t, pool)
	ctx := context.Background()
	if _, err := store.CreateESCO(ctx, "OTHER", "Other"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateAlertRule(ctx, flows.NewAlertRule{ESCO: "OTHER", Name: "Theirs", Kind: flows.AlertSelfDisconnected}, "test"); err != nil {
		t.Fatal(err)
	}
	conn, login := grantLogin(t, store, dbURL, postgres.SQLOperator, "WLCE")
	insert := func(esco string) error {
		id := mustID(t, pool, `SELECT id FROM flows.escos WHERE code = $1`, esco)
		_, err := conn.Exec(ctx, `INSERT INTO flows.alert_rules (esco, name, kind, threshold, webhook_url, webhook_secret)
			VALUES ($1, 'Under £3', 'low_balance', 3, 'https://esco.example/hook', 'a-long-shared-secret')`, id)
		return err
	}
	if err := insert("WLCE"); err != nil {
		t.Fatalf("the operator's login making its ESCO's rule: %v", err)
	}
	var by string
	if err := pool.QueryRow(ctx, `SELECT created_by FROM flows.alert_rules WHERE name = 'Under £3'`).Scan(&by); err != nil || by != login {
		t.Errorf("created_by %q (%v), want the login %q", by, err, login)
	}
	if err := insert("OTHER"); sqlState(err) != "42501" {
		t.Errorf("a rule for another ESCO = %v, want refused (42501)", err)
	}
	if tag, err := conn.Exec(ctx, `UPDATE flows.alert_rules SET enabled = false`); err != nil || tag.RowsAffected() != 1 {
		t.Errorf("turning its rules off: %v %v, want its one rule changed", tag, err)
	}
	if n := countOn(t, conn, `SELECT count(*) FROM flows.alert_rules`); n != 1 {
		t.Errorf("the login sees %d rules, want its own 1", n)
	}
	for _, sql := range []string{`SELECT webhook_secret FROM flows.alert_rules`, `INSERT INTO flows.alert_episodes (rule_id, meter_id, detail)
		SELECT r.id, m.id, 'x' FROM flows.alert_rules r, flows.meter_registry m LIMIT 1`} {
		if _, err := conn.Exec(ctx, sql); sqlState(err) != "42501" {
			t.Errorf("%s = %v, want permission denied", sql, err)
		}
	}
	ro, _ := grantLogin(t, store, dbURL, postgres.SQLReadonly, "WLCE")
	if _, err := ro.Exec(ctx, `INSERT INTO flows.alert_rules (esco, name, kind) VALUES ($1, 'x', 'push_failed')`,
		mustID(t, pool, `SELECT id FROM flows.escos WHERE code = 'WLCE'`)); sqlState(err) != "42501" && sqlState(err) != "25006" {
		t.Errorf("a reader's login making a rule = %v, want refused (a read-only session, or no privilege)", err)
	}
}

func countOn(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Grant and revoke: the printed password is the login's, the login is
// listed, a revoked login cannot connect and its open session is ended;
// names are checked and a role that is not a Flows login is left alone.
func TestGrantRevokeSQLLogin(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDB(t)
	pool := openPool(t, dbURL)
	store := postgres.NewStore(pool)
	ctx := context.Background()
	if _, err := store.CreateESCO(ctx, "WLCE", "Water Lilies"); err != nil {
		t.Fatal(err)
	}
	name := uniqueLogin("rt")
	password, err := store.GrantSQLLogin(ctx, postgres.SQLLoginSpec{Name: name, Access: postgres.SQLReadonly, ESCO: "wlce"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = store.RevokeSQLLogin(context.Background(), name) })
	if len(password) < 32 {
		t.Errorf("password %q is short", password)
	}
	checkSCRAM(t, pool, name, password)
	logins, err := store.SQLLogins(ctx)
	if err != nil || len(logins) != 1 || logins[0].Name != name || logins[0].Access != postgres.SQLReadonly || logins[0].ESCO != "WLCE" {
		t.Errorf("logins = %+v, %v", logins, err)
	}
	u, err := postgres.LoginURL(dbURL, name, password)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect as the new login: %v", err)
	}
	defer conn.Close(ctx)
	if n := countOn(t, conn, `SELECT count(*) FROM flows.escos`); n != 1 {
		t.Errorf("the login sees %d ESCOs, want its own", n)
	}

	for _, c := range []struct {
		spec  postgres.SQLLoginSpec
		code  string
		field string
	}{
		{postgres.SQLLoginSpec{Name: name, Access: postgres.SQLReadonly}, flows.ECONFLICT, "login"},
		{postgres.SQLLoginSpec{Name: "postgres", Access: postgres.SQLReadonly}, flows.ECONFLICT, "login"},
		{postgres.SQLLoginSpec{Name: uniqueLogin("x"), Access: postgres.SQLReadonly, ESCO: "NOPE"}, flows.ENOTFOUND, "esco"},
		{postgres.SQLLoginSpec{Name: uniqueLogin("x"), Access: "admin"}, flows.EINVALID, "role"},
		{postgres.SQLLoginSpec{Name: "Grafana", Access: postgres.SQLReadonly}, flows.EINVALID, "login"},
		{postgres.SQLLoginSpec{Name: "pg_reader", Access: postgres.SQLReadonly}, flows.EINVALID, "login"},
		{postgres.SQLLoginSpec{Name: "flows_readonly", Access: postgres.SQLReadonly}, flows.EINVALID, "login"},
		{postgres.SQLLoginSpec{Name: `x"; DROP ROLE postgres; --`, Access: postgres.SQLReadonly}, flows.EINVALID, "login"},
	} {
		if _, err := store.GrantSQLLogin(ctx, c.spec); flows.ErrorCode(err) != c.code || flows.ErrorField(err) != c.field {
			t.Errorf("grant %+v = %v, want %s naming %s", c.spec, err, c.code, c.field)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.sql_logins`); n != 1 {
		t.Errorf("%d logins recorded after the refused grants, want 1", n)
	}

	open, err := store.RevokeSQLLogin(ctx, name)
	if err != nil || open != 0 {
		t.Fatalf("revoke: %d open, %v", open, err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Errorf("the revoked login's open session still answers")
	}
	if c, err := pgx.Connect(ctx, u); err == nil {
		c.Close(ctx)
		t.Errorf("a revoked login connected")
	}
	if _, err := store.RevokeSQLLogin(ctx, name); flows.ErrorCode(err) != flows.ENOTFOUND {
		t.Errorf("revoke again = %v, want not found", err)
	}
	if _, err := store.RevokeSQLLogin(ctx, "postgres"); flows.ErrorCode(err) != flows.EINVALID {
		t.Errorf("revoke postgres = %v, want refused (not a Flows login)", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM pg_roles WHERE rolname IN ($1, 'postgres')`, name); n != 1 {
		t.Errorf("roles left: %d, want postgres alone", n)
	}
}

// checkSCRAM proves password is the login's: the stored SCRAM verifier
// is the one password derives (needs a superuser to read pg_authid).
func checkSCRAM(t *testing.T, pool *pgxpool.Pool, name, password string) {
	t.Helper()
	var verifier string
	if err := pool.QueryRow(context.Background(), `SELECT rolpassword FROM pg_authid WHERE rolname = $1`, name).Scan(&verifier); err != nil {
		t.Logf("cannot read pg_authid (%v): password not checked", err)
		return
	}
	var iter int
	var salt, stored, server string
	if _, err := fmt.Sscanf(strings.NewReplacer("$", " ", ":", " ").Replace(verifier), "SCRAM-SHA-256 %d %s %s %s", &iter, &salt, &stored, &server); err != nil {
		t.Fatalf("verifier %q: %v", verifier, err)
	}
	rawSalt, _ := base64.StdEncoding.DecodeString(salt)
	salted, err := pbkdf2.Key(sha256.New, password, rawSalt, iter, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	h := hmac.New(sha256.New, salted)
	h.Write([]byte("Client Key"))
	sum := sha256.Sum256(h.Sum(nil))
	if got := base64.StdEncoding.EncodeToString(sum[:]); got != stored {
		t.Errorf("the stored verifier is not the password's")
	}
}

// Roles are the cluster's: a login granted in one database sees no meter
// data in another database of the cluster, even a login of every ESCO.
func TestLoginSeesNothingInAnotherDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	urlA, urlB := pgtest.NewDB(t), pgtest.NewDB(t)
	poolA, poolB := openPool(t, urlA), openPool(t, urlB)
	storeA := postgres.NewStore(poolA)
	loadSeedFixture(t, poolB)
	if _, err := storeA.CreateESCO(ctx, "WLCE", "Water Lilies"); err != nil {
		t.Fatal(err)
	}
	for _, esco := range []string{"WLCE", ""} {
		name := uniqueLogin("elsewhere")
		password, err := storeA.GrantSQLLogin(ctx, postgres.SQLLoginSpec{Name: name, Access: postgres.SQLOperator, ESCO: esco})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = storeA.RevokeSQLLogin(context.Background(), name) })
		u, _ := postgres.LoginURL(urlB, name, password)
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"meter_registry", "meter_shadows", "meter_prepay_balance", "meter_csq", "escos", "meters_low_balance", "meter_shadows_tariffs"} {
			if n := countOn(t, conn, `SELECT count(*) FROM flows.`+table); n != 0 {
				t.Errorf("a login of database A (esco %q) sees %d rows of %s in database B", esco, n, table)
			}
		}
		id := mustID(t, poolB, `SELECT id FROM flows.meter_registry WHERE serial = 'EML2137580826'`)
		if _, err := conn.Exec(ctx, seedTariffUpdate(id)); sqlState(err) != "42501" {
			t.Errorf("its tariff update in database B = %v, want refused", err)
		}
		conn.Close(ctx)
	}
}

// Every relation a login may read either applies the policies (tables
// with row-level security, views with security_invoker) or is a reference
// table without meter data; every table with meter data has row-level
// security; no partition is readable around its table; the request
// trigger runs as the owner. A later migration that replaces a view or
// the trigger function, or adds a table, fails here until it keeps to
// the rules of 0016.
func TestRowSecurityCoversMeterData(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	reference := []string{"meter_event_log_type", "meter_metrics", "supply_event_types"}
	rows, err := pool.Query(context.Background(), `
		SELECT c.relname, c.relkind::text, c.relispartition, c.relrowsecurity, c.relforcerowsecurity,
		       coalesce(c.reloptions @> '{security_invoker=true}', false),
		       has_table_privilege('flows_readonly', c.oid, 'SELECT') OR has_any_column_privilege('flows_readonly', c.oid, 'SELECT'),
		       has_table_privilege('flows_operator', c.oid, 'SELECT') OR has_any_column_privilege('flows_operator', c.oid, 'SELECT'),
		       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname IN ('meter_id', 'register_id', 'esco', 'meter', 'serial') AND NOT a.attisdropped)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'flows' AND c.relkind IN ('r', 'p', 'v', 'm')`)
	if err != nil {
		t.Fatal(err)
	}
	var readable []string
	for rows.Next() {
		var name, kind string
		var partition, rls, force, invoker, ro, op, meterData bool
		if err := rows.Scan(&name, &kind, &partition, &rls, &force, &invoker, &ro, &op, &meterData); err != nil {
			t.Fatal(err)
		}
		switch {
		case partition && (ro || op):
			t.Errorf("partition %s is readable by a login, around its table's policy", name)
		case force:
			t.Errorf("%s forces row-level security: the services' own role would be subject to it", name)
		case kind == "m" && (ro || op):
			t.Errorf("materialized view %s is readable by a login: it has no row-level security", name)
		case kind == "v" && (ro || op) && !invoker:
			t.Errorf("view %s is readable but reads as its owner (security_invoker off), past the policies", name)
		case (kind == "r" || kind == "p") && !partition && meterData && !rls:
			t.Errorf("table %s holds meter data without row-level security", name)
		case (kind == "r" || kind == "p") && (ro || op) && !rls && !slices.Contains(reference, name):
			t.Errorf("table %s is readable by a login without row-level security", name)
		}
		if ro && !partition {
			readable = append(readable, name)
		}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	for _, want := range []string{"meter_registry", "meter_shadows", "meter_prepay_balance", "meter_csq", "meter_voltage", "meter_event_log",
		"meter_registers", "register_import", "register_export", "meter_profile", "register_interval_hh", "register_interval_day",
		"tariff_requests", "topups", "meter_commands", "tariff_rollouts", "meter_shadows_tariffs", "meters_low_balance",
		"meters_offline_recently", "meter_last_online", "register_interval_hh_missing", "meter_interval_completeness"} {
		if !slices.Contains(readable, want) {
			t.Errorf("%s is not readable by flows_readonly", want)
		}
	}
	var definer, queue bool
	if err := pool.QueryRow(context.Background(), `SELECT prosecdef FROM pg_proc WHERE oid = 'flows.tariffs_future_request'::regproc`).Scan(&definer); err != nil || !definer {
		t.Errorf("flows.tariffs_future_request is not SECURITY DEFINER (%v): an operator's tariff update cannot record its request", err)
	}
	if err := pool.QueryRow(context.Background(), `SELECT has_schema_privilege('flows_readonly', 'flows_queue', 'USAGE')`).Scan(&queue); err != nil || queue {
		t.Errorf("flows_readonly may use the job queue's schema (%v)", err)
	}
}

// The group roles are the cluster's: databases migrating at the same
// moment on a new cluster (as the tests' do) all succeed, make each role
// once, and each grant it their own tables. A private cluster, so that the
// roles do not exist yet.
func TestConcurrentMigrationsShareGroupRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "flows-roles-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // as root the server runs as postgres
		t.Fatal(err)
	}
	cluster, err := pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	const n = 4
	pools := make([]*pgxpool.Pool, n)
	for i := range pools {
		name := fmt.Sprintf("flows_%d", i)
		if err := postgres.CreateDatabase(ctx, cluster.URL("postgres"), name); err != nil {
			t.Fatal(err)
		}
		pools[i] = openPool(t, cluster.URL(name))
		// Up to the migration before the roles, so that all reach it together.
		if _, err := postgres.MigrateTo(ctx, pools[i], 15); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, n)
	for _, pool := range pools {
		go func() {
			_, err := postgres.Migrate(ctx, pool)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent migration: %v", err)
		}
	}
	for i, pool := range pools {
		var roles int
		var granted bool
		err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_roles WHERE rolname IN ('flows_readonly', 'flows_operator', 'flows_all_escos') AND NOT rolcanlogin),
			has_table_privilege('flows_readonly', 'flows.meter_prepay_balance', 'SELECT')`).Scan(&roles, &granted)
		if err != nil || roles != 3 || !granted {
			t.Errorf("database %d: %d group roles, readable %v (%v)", i, roles, granted, err)
		}
	}
}

// historyESCOMismatches counts the rows of migration 0020's tables whose
// esco is not their meter's: the column row-level security scopes them by.
func historyESCOMismatches(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, tbl := range []string{"meter_prepay_balance", "meter_csq", "meter_voltage", "meter_3p_voltage", "meter_health_history",
		"meter_event_log", "meter_profile", "meter_3p_interval"} {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM flows.`+tbl+` t JOIN flows.meter_registry mr ON mr.id = t.meter_id
			WHERE t.esco IS DISTINCT FROM mr.esco`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			out[tbl] = n
		}
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM flows.meter_shadows s JOIN flows.meter_registry mr ON mr.id = s.id
		WHERE s.esco IS DISTINCT FROM mr.esco`).Scan(&n); err != nil {
		t.Fatal(err)
	} else if n > 0 {
		out["meter_shadows"] = n
	}
	for _, tbl := range []string{"register_import", "register_export", "register_interval_hh", "register_interval_day"} {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM flows.`+tbl+` t JOIN flows.meter_registers r USING (register_id)
			JOIN flows.meter_registry mr ON mr.id = r.meter_id WHERE t.esco IS DISTINCT FROM mr.esco`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			out[tbl] = n
		}
	}
	return out
}

// A history row is scoped by the ESCO on it (0020): written without one
// (by a trigger of the shadow, a register trigger, by hand) or by the
// interval derivation, it carries its meter's; a meter moved to another
// ESCO takes its history along, so the old ESCO's login stops seeing it
// and the new one's starts.
func TestHistoryCarriesItsMetersESCO(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDB(t)
	pool := openPool(t, dbURL)
	store := postgres.NewStore(pool)
	ctx := context.Background()
	for _, code := range []string{"WLCE", "HMCE"} {
		if _, err := store.CreateESCO(ctx, code, code); err != nil {
			t.Fatal(err)
		}
	}
	wlce := mustID(t, pool, `SELECT id FROM flows.escos WHERE code = 'WLCE'`)
	hmce := mustID(t, pool, `SELECT id FROM flows.escos WHERE code = 'HMCE'`)
	m, err := store.CreateMeter(ctx, flows.NewMeter{Serial: "EML2137580826", Name: "Plot 01", IPAddress: "10.0.0.1", Hardware: "C1.w", Mode: flows.ModeActive, ESCOCode: "WLCE"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []flows.Element{flows.ElementA, flows.ElementB} {
		if _, err := store.AddRegister(ctx, m.ID, e, false); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(30 * time.Minute)
	day := now.Truncate(24 * time.Hour).Add(-24 * time.Hour)
	// Shadow triggers (balance, csq, voltage, health, registers), events,
	// and balance history by hand.
	mustExec(t, pool, `UPDATE flows.meter_shadows SET balance = 12.5, emergency_credit = 15, csq = 20, voltage = 240.1,
		health = 'healthy', import_a = 1234.5, import_b = 99.0, export_a = 3 WHERE id = $1`, m.ID)
	mustExec(t, pool, `INSERT INTO flows.meter_event_log (meter_id, "timestamp", event_type, event_set) VALUES ($1, $2, 1, 1)`, m.ID, now)
	mustExec(t, pool, `INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance, emergency_credit)
		SELECT $1, $2::timestamptz - k * interval '30 minutes', 20, 15 FROM generate_series(1, 96) k`, m.ID, now)
	// A day of profile records, derived into intervals and a day total.
	mustExec(t, pool, `INSERT INTO flows.meter_profile (meter_id, "timestamp", status, import_a_wh, import_b_wh, export_a_wh, export_b_wh)
		SELECT $1, $2::timestamptz + k * interval '30 minutes', 32768, 1000 + 100 * k, 500 + 10 * k, 0, 0 FROM generate_series(0, 48) k`, m.ID, day)
	mustExec(t, pool, `SELECT flows.derive_register_intervals($1, $2, $3)`, m.ID, day, day.Add(24*time.Hour))

	counts := `SELECT (SELECT count(*) FROM flows.meter_prepay_balance) || ',' || (SELECT count(*) FROM flows.meter_csq) || ',' ||
		(SELECT count(*) FROM flows.meter_event_log) || ',' || (SELECT count(*) FROM flows.register_import) || ',' ||
		(SELECT count(*) FROM flows.register_interval_hh) || ',' || (SELECT count(*) FROM flows.register_interval_day)`
	var all string
	if err := pool.QueryRow(ctx, counts).Scan(&all); err != nil {
		t.Fatal(err)
	}
	if all != "97,1,1,2,96,2" {
		t.Fatalf("owner sees %s rows (balance, csq, events, imports, intervals, days), want 97,1,1,2,96,2", all)
	}
	if bad := historyESCOMismatches(t, pool); len(bad) > 0 {
		t.Errorf("rows without their meter's ESCO: %v", bad)
	}
	wl, _ := grantLogin(t, store, dbURL, postgres.SQLReadonly, "WLCE")
	hm, _ := grantLogin(t, store, dbURL, postgres.SQLReadonly, "HMCE")
	see := func(conn *pgx.Conn) string {
		t.Helper()
		var got string
		if err := conn.QueryRow(ctx, counts).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := see(wl); got != all {
		t.Errorf("WLCE's login sees %s of its meter's rows, want %s", got, all)
	}
	if got := see(hm); got != "0,0,0,0,0,0" {
		t.Errorf("HMCE's login sees %s of WLCE's meter's rows, want none", got)
	}

	// The meter changes hands.
	mustExec(t, pool, `UPDATE flows.meter_registry SET esco = $1 WHERE id = $2`, hmce, m.ID)
	if got := see(wl); got != "0,0,0,0,0,0" {
		t.Errorf("after the move WLCE's login sees %s rows of the meter it gave up", got)
	}
	if got := see(hm); got != all {
		t.Errorf("after the move HMCE's login sees %s of its new meter's rows, want %s", got, all)
	}
	if bad := historyESCOMismatches(t, pool); len(bad) > 0 {
		t.Errorf("after the move, rows still of the old ESCO: %v", bad)
	}
	// A row cannot be given another ESCO than its meter's by an update.
	mustExec(t, pool, `UPDATE flows.meter_prepay_balance SET esco = $1 WHERE meter_id = $2`, wlce, m.ID)
	if bad := historyESCOMismatches(t, pool); len(bad) > 0 {
		t.Errorf("an update gave rows another ESCO than their meter's: %v", bad)
	}
}
