package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
)

func mustExec(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func mustID(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) string {
	t.Helper()
	var id string
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&id); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return id
}

func count(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// A shadow row exists for every registry row without anyone inserting it.
func TestShadowCreatedWithMeter(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	id := mustID(t, pool, `INSERT INTO flows.meter_registry (serial) VALUES ('EML1000000001') RETURNING id`)
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_shadows WHERE id = $1`, id); n != 1 {
		t.Fatalf("shadows for new meter = %d, want 1", n)
	}
	mustExec(t, pool, `DELETE FROM flows.meter_registry WHERE id = $1`, id)
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_shadows`); n != 0 {
		t.Fatalf("shadow survived its meter")
	}
}

// Writing shadow values with plain SQL appends history exactly as the sync
// engine's writes do.
func TestShadowHistoryFromPlainSQL(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	id := mustID(t, pool, `INSERT INTO flows.meter_registry (serial) VALUES ('EML1000000002') RETURNING id`)

	mustExec(t, pool, `UPDATE flows.meter_shadows SET balance = 10.5, emergency_credit = 15 WHERE id = $1`, id)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET balance = 9.25 WHERE id = $1`, id)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET emergency_credit = 10 WHERE id = $1`, id)
	rows, err := pool.Query(ctx, `SELECT balance::text, emergency_credit::text FROM flows.meter_prepay_balance WHERE meter_id = $1 ORDER BY "timestamp"`, id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var b, ec string
		_ = rows.Scan(&b, &ec)
		got = append(got, b+"/"+ec)
	}
	if want := "10.50000/15.00000 9.25000/15.00000 9.25000/10.00000"; strings.Join(got, " ") != want {
		t.Errorf("balance history = %v, want %s", got, want)
	}

	// balance_updated_at moves when the balance changes, not otherwise.
	var b1, b2 time.Time
	_ = pool.QueryRow(ctx, `SELECT balance_updated_at FROM flows.meter_shadows WHERE id = $1`, id).Scan(&b1)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET csq = 12 WHERE id = $1`, id)
	_ = pool.QueryRow(ctx, `SELECT balance_updated_at FROM flows.meter_shadows WHERE id = $1`, id).Scan(&b2)
	if b1.IsZero() || !b1.Equal(b2) {
		t.Errorf("balance_updated_at %v then %v: set on change, untouched by a csq write", b1, b2)
	}

	// csq history includes NULL writes (offline periods).
	mustExec(t, pool, `UPDATE flows.meter_shadows SET csq = NULL WHERE id = $1`, id)
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_csq WHERE meter_id = $1`, id); n != 2 {
		t.Errorf("csq history rows = %d, want 2 (12, then NULL)", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_csq WHERE meter_id = $1 AND csq IS NULL`, id); n != 1 {
		t.Errorf("NULL csq rows = %d, want 1", n)
	}

	mustExec(t, pool, `UPDATE flows.meter_shadows SET voltage = 239.4 WHERE id = $1`, id)
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_voltage WHERE meter_id = $1 AND voltage = 239.4`, id); n != 1 {
		t.Errorf("voltage history rows = %d, want 1", n)
	}

	// Health: history each write; last_healthy_at only when healthy.
	mustExec(t, pool, `UPDATE flows.meter_shadows SET health = 'unhealthy', health_details = 'timeout' WHERE id = $1`, id)
	var lh *time.Time
	_ = pool.QueryRow(ctx, `SELECT last_healthy_at FROM flows.meter_shadows WHERE id = $1`, id).Scan(&lh)
	if lh != nil {
		t.Errorf("last_healthy_at = %v after an unhealthy write, want NULL", lh)
	}
	mustExec(t, pool, `UPDATE flows.meter_shadows SET health = 'healthy' WHERE id = $1`, id)
	var updated time.Time
	_ = pool.QueryRow(ctx, `SELECT last_healthy_at, updated_at FROM flows.meter_shadows WHERE id = $1`, id).Scan(&lh, &updated)
	if lh == nil || !lh.Equal(updated) {
		t.Errorf("last_healthy_at = %v, want the healthy write's time %v", lh, updated)
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_health_history WHERE meter_id = $1`, id); n != 2 {
		t.Errorf("health history rows = %d, want 2", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_health_history WHERE meter_id = $1 AND health = 'unhealthy' AND health_details = 'timeout'`, id); n != 1 {
		t.Errorf("health history keeps the details of an unhealthy write")
	}
}

// Register reads go to the right register: A and B on twin-element meters,
// SINGLE on single-element ones, import and export swapped when reversed.
func TestRegisterRouting(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	twin := mustID(t, pool, `INSERT INTO flows.meter_registry (serial, hardware) VALUES ('EML1000000010', 'C1.w') RETURNING id`)
	single := mustID(t, pool, `INSERT INTO flows.meter_registry (serial, hardware) VALUES ('EML1000000011', 'EMA1.w') RETURNING id`)
	solar := mustID(t, pool, `INSERT INTO flows.meter_registry (serial, hardware) VALUES ('EML1000000012', 'EMA1.w') RETURNING id`)
	none := mustID(t, pool, `INSERT INTO flows.meter_registry (serial) VALUES ('EML1000000013') RETURNING id`)
	regA := mustID(t, pool, `INSERT INTO flows.meter_registers (meter_id, element) VALUES ($1, 'A') RETURNING register_id`, twin)
	regB := mustID(t, pool, `INSERT INTO flows.meter_registers (meter_id, element) VALUES ($1, 'B') RETURNING register_id`, twin)
	regS := mustID(t, pool, `INSERT INTO flows.meter_registers (meter_id, element) VALUES ($1, 'SINGLE') RETURNING register_id`, single)
	regR := mustID(t, pool, `INSERT INTO flows.meter_registers (meter_id, element, direction_reversed) VALUES ($1, 'SINGLE', true) RETURNING register_id`, solar)

	mustExec(t, pool, `UPDATE flows.meter_shadows SET import_a = 100.5, export_a = 1.25, import_b = 50.75, export_b = 0 WHERE id = $1`, twin)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET import_a = 200, export_a = 3 WHERE id = $1`, single)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET import_a = 7, export_a = 4321.5 WHERE id = $1`, solar)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET import_a = 9 WHERE id = $1`, none)

	read := func(table, reg string) string {
		t.Helper()
		var vals []string
		rows, err := pool.Query(ctx, `SELECT read::text FROM flows.`+table+` WHERE register_id = $1`, reg)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v string
			_ = rows.Scan(&v)
			vals = append(vals, v)
		}
		return strings.Join(vals, ",")
	}
	for _, c := range []struct{ name, table, reg, want string }{
		{"twin A import", "register_import", regA, "100.500"},
		{"twin A export", "register_export", regA, "1.250"},
		{"twin B import", "register_import", regB, "50.750"},
		{"twin B export", "register_export", regB, "0.000"},
		{"single import", "register_import", regS, "200.000"},
		{"single export", "register_export", regS, "3.000"},
		{"reversed: meter export is our import", "register_import", regR, "4321.500"},
		{"reversed: meter import is our export", "register_export", regR, "7.000"},
	} {
		if got := read(c.table, c.reg); got != c.want {
			t.Errorf("%s: %s = %q, want %q", c.name, c.table, got, c.want)
		}
	}
	if n := count(t, pool, `SELECT (SELECT count(*) FROM flows.register_import) + (SELECT count(*) FROM flows.register_export)`); n != 8 {
		t.Errorf("register rows = %d, want 8 (a meter without registers tracks nothing)", n)
	}

	// A replaced register stops receiving reads; its successor gets them.
	mustExec(t, pool, `UPDATE flows.meter_registers SET status = 'replaced' WHERE register_id = $1`, regS)
	regS2 := mustID(t, pool, `INSERT INTO flows.meter_registers (meter_id, element) VALUES ($1, 'SINGLE') RETURNING register_id`, single)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET import_a = 201 WHERE id = $1`, single)
	if got := read("register_import", regS2); got != "201.000" {
		t.Errorf("new register import = %q, want 201.000", got)
	}
	if got := read("register_import", regS); got != "200.000" {
		t.Errorf("replaced register import = %q, want only the old read", got)
	}
}

// Each constraint rejects bad data with a message naming the column, and
// the rejected statement changes nothing.
func TestConstraintsNameTheColumn(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	id := mustID(t, pool, `INSERT INTO flows.meter_registry (serial, ip_address) VALUES ('EML1000000020', '10.0.0.1') RETURNING id`)
	twin := mustID(t, pool, `INSERT INTO flows.meter_registry (serial) VALUES ('EML1000000021') RETURNING id`)
	mustExec(t, pool, `INSERT INTO flows.meter_registers (meter_id, element) VALUES ($1, 'A')`, twin)
	for _, c := range []struct{ name, sql, want string }{
		{"csq above 31", `UPDATE flows.meter_shadows SET csq = 32 WHERE id = '` + id + `'`, "csq"},
		{"csq negative", `UPDATE flows.meter_shadows SET csq = -1 WHERE id = '` + id + `'`, "csq"},
		{"lower-case serial", `INSERT INTO flows.meter_registry (serial) VALUES ('eml2137580826')`, "serial"},
		{"serial with a space", `INSERT INTO flows.meter_registry (serial) VALUES ('EML 2137580826')`, "serial"},
		{"serial too short", `INSERT INTO flows.meter_registry (serial) VALUES ('EML12')`, "serial"},
		{"duplicate serial", `INSERT INTO flows.meter_registry (serial) VALUES ('EML1000000020')`, "serial"},
		{"duplicate IP", `INSERT INTO flows.meter_registry (serial, ip_address) VALUES ('EML1000000022', '10.0.0.1')`, "ip_address"},
		{"malformed IP", `INSERT INTO flows.meter_registry (serial, ip_address) VALUES ('EML1000000023', '10.0.0.300')`, "inet"},
		{"unknown mode", `INSERT INTO flows.meter_registry (serial, mode) VALUES ('EML1000000024', 'dormant')`, "meter_mode_enum"},
		{"unknown health", `UPDATE flows.meter_shadows SET health = 'ok' WHERE id = '` + id + `'`, "health_check_status"},
		{"unknown element", `INSERT INTO flows.meter_registers (meter_id, element) VALUES ('` + id + `', 'C')`, "meter_register_element"},
		{"negative emergency credit", `UPDATE flows.meter_shadows SET emergency_credit = -0.01 WHERE id = '` + id + `'`, "emergency_credit"},
		{"tariff amount not a number", `UPDATE flows.meter_shadows SET tariffs_future = '{"standing_charge": "lots"}' WHERE id = '` + id + `'`, "tariffs_future"},
		{"tariff not an object", `UPDATE flows.meter_shadows SET tariffs_active = '[1]' WHERE id = '` + id + `'`, "tariffs_active"},
		{"SINGLE beside A", `INSERT INTO flows.meter_registers (meter_id, element) VALUES ('` + twin + `', 'SINGLE')`, "element"},
		{"second enabled A", `INSERT INTO flows.meter_registers (meter_id, element) VALUES ('` + twin + `', 'A')`, "element"},
	} {
		_, err := pool.Exec(ctx, c.sql)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not name %q", c.name, err, c.want)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_registry`); n != 2 {
		t.Errorf("registry rows = %d after rejected inserts, want 2", n)
	}
	var csq *int
	var ec *decimal.Decimal
	_ = pool.QueryRow(ctx, `SELECT csq, emergency_credit FROM flows.meter_shadows WHERE id = $1`, id).Scan(&csq, &ec)
	if csq != nil || ec != nil {
		t.Errorf("rejected updates changed the shadow: csq %v, emergency credit %v", csq, ec)
	}
}

// The tariff view exposes every active and future field as numbers, reads
// offset-less activation times in the meter's clock zone, and accepts the
// seed's tariff JSON (numbers) as well as the meter's (decimal strings).
func TestTariffView(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	utc := mustID(t, pool, `INSERT INTO flows.meter_registry (serial) VALUES ('EML1000000030') RETURNING id`)
	bst := mustID(t, pool, `INSERT INTO flows.meter_registry (serial, daylight_savings_correction_enabled) VALUES ('EML1000000031', true) RETURNING id`)
	seedTariff := `{"standing_charge": 0.5868, "unit_rate_element_a": 0.2843, "unit_rate_element_b": 0.1500,
		"prepayment_ecredit_availability": 10.00, "prepayment_debt_recovery_rate": 0.25,
		"prepayment_emergency_credit": 15.00, "activation_datetime": "2024-10-01T00:00:00"}`
	meterTariff := `{"standing_charge": "0.60000", "unit_rate_element_a": "0.30000", "unit_rate_element_b": "0.30000",
		"prepayment_ecredit_availability": "10.00000", "prepayment_debt_recovery_rate": "0.30000",
		"prepayment_emergency_credit": "15.00000"}`
	for _, id := range []string{utc, bst} {
		// As the sync engine writes what meters report (a past activation
		// is fine there; an operator's request would be refused).
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('flows.writer', 'sync', true)`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `UPDATE flows.meter_shadows SET tariffs_future = $2, tariffs_active = $3 WHERE id = $1`, id, seedTariff, meterTariff)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	type row struct {
		as, aa, ab, aec, adr, aem, fs, fa, fb, fec, fdr, fem decimal.Decimal
		fdt                                                  time.Time
		fat                                                  time.Time
	}
	get := func(id string) row {
		var r row
		err := pool.QueryRow(ctx, `SELECT active_standing_charge, active_unit_rate_a, active_unit_rate_b,
			active_ecredit_availability, active_debt_recovery_rate, active_emergency_credit,
			future_standing_charge, future_unit_rate_a, future_unit_rate_b, future_ecredit_availability,
			future_debt_recovery_rate, future_emergency_credit, future_activation_datetime, future_activation_at
			FROM flows.meter_shadows_tariffs WHERE id = $1`, id).Scan(&r.as, &r.aa, &r.ab, &r.aec, &r.adr, &r.aem,
			&r.fs, &r.fa, &r.fb, &r.fec, &r.fdr, &r.fem, &r.fdt, &r.fat)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := get(utc)
	d := decimal.RequireFromString
	for _, c := range []struct {
		name      string
		got, want decimal.Decimal
	}{
		{"active_standing_charge", r.as, d("0.6")}, {"active_unit_rate_a", r.aa, d("0.3")}, {"active_unit_rate_b", r.ab, d("0.3")},
		{"active_ecredit_availability", r.aec, d("10")}, {"active_debt_recovery_rate", r.adr, d("0.3")}, {"active_emergency_credit", r.aem, d("15")},
		{"future_standing_charge", r.fs, d("0.5868")}, {"future_unit_rate_a", r.fa, d("0.2843")}, {"future_unit_rate_b", r.fb, d("0.15")},
		{"future_ecredit_availability", r.fec, d("10")}, {"future_debt_recovery_rate", r.fdr, d("0.25")}, {"future_emergency_credit", r.fem, d("15")},
	} {
		if !c.got.Equal(c.want) {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	wall := time.Date(2024, 10, 1, 0, 0, 0, 0, time.UTC)
	if !r.fdt.Equal(wall) || !r.fat.Equal(wall) {
		t.Errorf("UTC meter: activation %v / instant %v, want both %v", r.fdt, r.fat, wall)
	}
	r = get(bst)
	if !r.fdt.Equal(wall) {
		t.Errorf("BST meter: meter-clock activation = %v, want %v", r.fdt, wall)
	}
	if want := time.Date(2024, 9, 30, 23, 0, 0, 0, time.UTC); !r.fat.Equal(want) {
		t.Errorf("BST meter: activation instant = %v, want %v (midnight BST)", r.fat.UTC(), want)
	}
}

// The shadow's last_online_at, which the fleet page reads and sorts by,
// is meter_last_online's answer at every step: NULL before the meter
// answers, the newest non-NULL csq write, kept through a failed sync (csq
// NULL), moved by the next answer, and never back by an older one.
func TestLastOnlineColumnFollowsTheView(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	id := mustID(t, pool, `INSERT INTO flows.meter_registry (serial) VALUES ('EML1000000009') RETURNING id`)
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	check := func(step string, want *time.Time) {
		t.Helper()
		var col, view *time.Time
		if err := pool.QueryRow(ctx, `SELECT ms.last_online_at, lo.last_online FROM flows.meter_shadows ms
			JOIN flows.meter_last_online lo ON lo.id = ms.id WHERE ms.id = $1`, id).Scan(&col, &view); err != nil {
			t.Fatal(err)
		}
		same := func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
		if !same(col, view) || !same(col, want) {
			t.Errorf("%s: last_online_at %v, meter_last_online %v, want %v", step, col, view, want)
		}
	}
	at := func(h int) *time.Time { v := t0.Add(time.Duration(h) * time.Hour); return &v }
	check("never answered", nil)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET balance = 3 WHERE id = $1`, id)
	check("a balance write", nil)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET csq = 12, updated_at = $2 WHERE id = $1`, id, *at(0))
	check("first answer", at(0))
	mustExec(t, pool, `UPDATE flows.meter_shadows SET csq = NULL, updated_at = $2 WHERE id = $1`, id, *at(1))
	check("a failed sync", at(0))
	mustExec(t, pool, `UPDATE flows.meter_shadows SET csq = 14, updated_at = $2 WHERE id = $1`, id, *at(2))
	check("the next answer", at(2))
	mustExec(t, pool, `UPDATE flows.meter_shadows SET csq = 9, updated_at = $2 WHERE id = $1`, id, *at(-5))
	check("an older observation", at(2))
}
