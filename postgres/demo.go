package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// DemoESCO is the ESCO that SeedDemo creates.
type DemoESCO struct {
	Code, Name string
}

// DemoMeter is one meter of a demo fleet as SeedDemo writes it: its
// registry row, its register layout and how its invented history looks.
type DemoMeter struct {
	Serial    string
	Name      string
	IPAddress string // "" for no address
	Port      int
	Hardware  string
	Mode      string // "active" or "passive"
	Layout    string // register layout, as InsertRegisters takes it
	DST       bool   // daylight savings correction enabled

	// StartBalance is the balance, in pounds, a week before now: the
	// history falls from it with use and gets a top-up mid-week.
	StartBalance int
	// Offline meters stop reporting signal five hours before now and
	// their shadow is left unhealthy (unreachable).
	Offline bool
}

// SeedDemo inserts the demo ESCO, the meters' registry rows and registers
// (InsertRegisters), seven days of half-hourly balance and hourly signal
// history, and current shadow values written through the shadow so the
// triggers record them like a sync would. It does nothing when an ESCO
// with esco.Code already exists (a restarted demo keeps its data), and
// otherwise runs in one transaction: nothing is half-written. A meter's
// position in meters varies its invented readings. It returns the ESCO's
// id.
func (s *Store) SeedDemo(ctx context.Context, esco DemoESCO, meters []DemoMeter, now time.Time) (string, error) {
	var escoID string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT id FROM flows.escos WHERE code = $1`, esco.Code).Scan(&escoID)
		if err == nil {
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return translate(err, "esco "+esco.Code)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO flows.escos (code, name) VALUES ($1, $2) RETURNING id`,
			esco.Code, esco.Name).Scan(&escoID); err != nil {
			return translate(err, "esco")
		}
		for i, m := range meters {
			id, err := insertDemoMeter(ctx, tx, escoID, m)
			if err != nil {
				return translate(err, "meter "+m.Serial)
			}
			if err := InsertRegisters(ctx, tx, id, m.Layout); err != nil {
				return translate(err, "registers of "+m.Serial)
			}
			if err := seedDemoHistory(ctx, tx, id, i, m, now); err != nil {
				return translate(err, "shadow of "+m.Serial)
			}
		}
		return nil
	})
	return escoID, err
}

// insertDemoMeter writes m's registry row (its shadow is created by a
// trigger) and returns its id.
func insertDemoMeter(ctx context.Context, tx pgx.Tx, escoID string, m DemoMeter) (string, error) {
	var ip *string
	if m.IPAddress != "" {
		ip = &m.IPAddress
	}
	var id string
	err := tx.QueryRow(ctx, `INSERT INTO flows.meter_registry (serial, name, ip_address, port, hardware, mode, esco,
			daylight_savings_correction_enabled, prepay_enabled, firmware_version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true, '3_02_8') RETURNING id`,
		m.Serial, m.Name, ip, m.Port, m.Hardware, m.Mode, escoID, m.DST).Scan(&id)
	return id, err
}

// seedDemoHistory writes a week of history (balance falling with use, a
// top-up mid-week, hourly signal) and then, for active meters, the current
// values through the shadow. i varies the readings from meter to meter.
func seedDemoHistory(ctx context.Context, tx pgx.Tx, id string, i int, m DemoMeter, now time.Time) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance, emergency_credit)
		SELECT $1, $2::timestamptz - k * interval '30 minutes',
		       round($3 - (336 - k) * 0.0105 + CASE WHEN k < 168 AND $3 < 10 THEN 0 WHEN k < 168 THEN 10 ELSE 0 END, 5), 15
		FROM generate_series(1, 336) AS k`, id, now, m.StartBalance)
	if err != nil {
		return err
	}
	lastOnline := now
	if m.Offline {
		lastOnline = now.Add(-5 * time.Hour)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO flows.meter_csq (meter_id, "timestamp", csq)
		SELECT $1, $2::timestamptz - k * interval '1 hour', 8 + (k + $3) % 20
		FROM generate_series(1, 167) AS k WHERE $2::timestamptz - k * interval '1 hour' <= $4`, id, now, i, lastOnline)
	if err != nil {
		return err
	}
	if m.Mode == "passive" {
		return nil
	}
	if m.Offline {
		_, err = tx.Exec(ctx, `UPDATE flows.meter_shadows SET csq = NULL, health = 'unhealthy',
			health_details = 'unreachable: connection refused', updated_at = $2 WHERE id = $1`, id, now)
		return err
	}
	_, err = tx.Exec(ctx, `
		UPDATE flows.meter_shadows SET
			balance = (SELECT balance FROM flows.meter_prepay_balance WHERE meter_id = $1 ORDER BY "timestamp" DESC LIMIT 1) - 0.0105,
			emergency_credit = 15, csq = 8 + $3 % 20, health = 'healthy', health_details = '',
			voltage = 236.0 + ($3 % 9), clock_time_diff_seconds = CASE WHEN $3 % 11 = 7 THEN 95 ELSE $3 % 5 END,
			clock_time_diff_synced_at = $2,
			import_a = 1000 + $3 * 37.5, export_a = CASE WHEN $4 = 'solar' THEN 800 + $3 ELSE 0 END,
			import_b = CASE WHEN $4 = 'twin' THEN 400 + $3 * 11.25 END, export_b = CASE WHEN $4 = 'twin' THEN 0 END,
			tariffs_active = '{"standing_charge": "0.58680", "unit_rate_element_a": "0.28430", "unit_rate_element_b": "0.15000",
				"prepayment_ecredit_availability": "10.00000", "prepayment_debt_recovery_rate": "0.25000",
				"prepayment_emergency_credit": "15.00000"}',
			backlight = 'normal_sp', load_switch = 'normal_button_always', updated_at = $2
		WHERE id = $1`, id, now, i, m.Layout)
	return err
}

// SetMeterAddress points a meter at ip:port, writing only when they
// differ (so an unchanged registry does not notify the mediators).
func (s *Store) SetMeterAddress(ctx context.Context, serial, ip string, port int) error {
	_, err := s.pool.Exec(ctx, `UPDATE flows.meter_registry SET ip_address = $2::inet, port = $3
		WHERE serial = $1 AND (ip_address IS DISTINCT FROM $2::inet OR port <> $3)`, serial, ip, port)
	return translate(err, "meter "+serial)
}

// CreateDatabase creates database db on the server at adminURL unless it
// exists.
func CreateDatabase(ctx context.Context, adminURL, db string) error {
	pool, err := Open(ctx, adminURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return translate(err, "database "+db)
	}
	if exists {
		return nil
	}
	_, err = pool.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
	return translate(err, "database "+db)
}
