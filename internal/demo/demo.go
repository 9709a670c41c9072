// Package demo describes and seeds the demonstration fleet of flows demo:
// one ESCO with a realistic mix of meters (single and twin element, solar
// with reversed registers, a few passive twins, a few offline), and a week
// of balance history so the views and queries have something to show.
package demo

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ESCOCode is the demo ESCO's code.
const ESCOCode = "DEMO"

// Meter is one meter of the demo fleet, in the shape of the ready-file and
// of flows sim --registry-out.
type Meter struct {
	Serial    string `json:"serial"`
	IPAddress string `json:"ip_address"`
	Port      int    `json:"port"`
	Mode      string `json:"mode"`
	Hardware  string `json:"hardware"`
	Key       string `json:"key"`
	// Layout is "single", "twin" or "solar" (single element, reversed).
	Layout string `json:"layout"`
	DST    bool   `json:"daylight_savings_correction_enabled"`
	Name   string `json:"name"`
	// Offline marks meters the demo shows as unreachable.
	Offline bool `json:"offline,omitempty"`
}

// Fleet returns n demo meters. The layout is deterministic; keys are
// derived from secret so they stay the same across restarts of one demo.
func Fleet(n int, secret []byte) []Meter {
	out := make([]Meter, 0, n)
	for i := range n {
		m := Meter{
			Serial:   fmt.Sprintf("EML22%08d", 1000+i),
			Port:     8080,
			Mode:     "active",
			Hardware: "EMA1.w",
			Layout:   "single",
			Name:     fmt.Sprintf("Plot %02d", i+1),
			DST:      i%3 == 0,
		}
		if i == 0 {
			m.Serial = "EML2137580826" // the seed specification's example meter
		}
		switch {
		case i%4 == 1:
			m.Hardware, m.Layout = "C1.w", "twin"
		case i%10 == 3:
			m.Layout = "solar"
		case i%2 == 0:
			m.Hardware = "B1.w"
		}
		if i%20 == 19 {
			m.Mode = "passive" // a digital twin: no hardware to reach
		} else {
			m.IPAddress = fmt.Sprintf("127.77.%d.%d", i/250, i%250+1)
		}
		m.Offline = m.Mode == "active" && i%17 == 5
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(m.Serial))
		m.Key = hex.EncodeToString(mac.Sum(nil)[:16])
		out = append(out, m)
	}
	return out
}

// Seed inserts the ESCO, the fleet's registry rows and registers, current
// shadow values and seven days of half-hourly balance history. It does
// nothing when the ESCO already exists (a restarted demo keeps its data),
// and otherwise runs in one transaction: nothing is half-written. It
// returns the ESCO's id.
func Seed(ctx context.Context, pool *pgxpool.Pool, fleet []Meter, now time.Time) (string, error) {
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
			var id string
			err := tx.QueryRow(ctx, `INSERT INTO flows.meter_registry (serial, name, ip_address, port, hardware, mode, esco,
					daylight_savings_correction_enabled, prepay_enabled, firmware_version)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true, '3_02_8') RETURNING id`,
				m.Serial, m.Name, ip, m.Port, m.Hardware, m.Mode, escoID, m.DST).Scan(&id)
			if err != nil {
				return fmt.Errorf("meter %s: %w", m.Serial, err)
			}
			switch m.Layout {
			case "twin":
				_, err = tx.Exec(ctx, `INSERT INTO flows.meter_registers (meter_id, element) VALUES ($1, 'A'), ($1, 'B')`, id)
			case "solar":
				_, err = tx.Exec(ctx, `INSERT INTO flows.meter_registers (meter_id, element, direction_reversed, nature) VALUES ($1, 'SINGLE', true, 'solar')`, id)
			default:
				_, err = tx.Exec(ctx, `INSERT INTO flows.meter_registers (meter_id, element) VALUES ($1, 'SINGLE')`, id)
			}
			if err != nil {
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
func seedShadow(ctx context.Context, tx pgx.Tx, id string, i int, m Meter, now time.Time) error {
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
