// Package demo seeds the database of flows demo: one ESCO whose meters are
// the simulated fleet (sim.GenerateFleet), with their registers, and a
// week of history so the views and queries have something to show before
// the first sync.
package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ESCOCode is the demo ESCO's code.
const ESCOCode = "DEMO"

// Seed inserts the ESCO, the fleet's registry rows and registers, current
// shadow values and seven days of half-hourly balance history. It does
// nothing when the ESCO already exists (a restarted demo keeps its data),
// and otherwise runs in one transaction: nothing is half-written. It
// returns the ESCO's id.
func Seed(ctx context.Context, pool *pgxpool.Pool, fleet []sim.Spec, now time.Time) (string, error) {
	var escoID string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT id FROM flows.escos WHERE code = $1`, ESCOCode).Scan(&escoID)
		if err == nil {
			return nil
		}
		if err != pgx.ErrNoRows {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO flows.escos (code, name) VALUES ($1, 'Demo Community Energy') RETURNING id`, ESCOCode).Scan(&escoID); err != nil {
			return err
		}
		for i, m := range fleet {
			var ip *string
			if m.IPAddress != "" {
				ip = &m.IPAddress
			}
			port := m.Port
			if port == 0 {
				port = 8080 // passive twins: no simulated hardware behind them
			}
			var id string
			err := tx.QueryRow(ctx, `INSERT INTO flows.meter_registry (serial, name, ip_address, port, hardware, mode, esco,
					daylight_savings_correction_enabled, prepay_enabled, firmware_version)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true, '3_02_8') RETURNING id`,
				m.Serial, m.Name, ip, port, m.Hardware, m.Mode, escoID, m.DST).Scan(&id)
			if err != nil {
				return fmt.Errorf("meter %s: %w", m.Serial, err)
			}
			if err := postgres.InsertRegisters(ctx, tx, id, m.Layout); err != nil {
				return fmt.Errorf("registers of %s: %w", m.Serial, err)
			}
			if err := seedShadow(ctx, tx, id, i, m, now); err != nil {
				return fmt.Errorf("shadow of %s: %w", m.Serial, err)
			}
		}
		return nil
	})
	return escoID, err
}

// seedShadow writes a week of history (balance falling with use, a top-up
// mid-week, hourly signal) and then the current values through the shadow,
// so the triggers record them like a sync would.
func seedShadow(ctx context.Context, tx pgx.Tx, id string, i int, m sim.Spec, now time.Time) error {
	start := 12 + (i*7)%40 // £12-£51 a week ago
	if i%9 == 4 {
		start = 6 // a few will be under £5 by now
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance, emergency_credit)
		SELECT $1, $2::timestamptz - k * interval '30 minutes',
		       round($3 - (336 - k) * 0.0105 + CASE WHEN k < 168 AND $3 < 10 THEN 0 WHEN k < 168 THEN 10 ELSE 0 END, 5), 15
		FROM generate_series(1, 336) AS k`, id, now, start)
	if err != nil {
		return err
	}
	lastOnline := now
	offline := m.Faults.Offline
	if offline {
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
	if offline {
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
