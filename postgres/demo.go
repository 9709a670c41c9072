package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// DemoESCO is the ESCO that SeedDemo creates.
type DemoESCO struct {
	Code, Name string
}

// DemoMeter is one meter of a demo fleet as SeedDemo writes it: its
// registry row, its register layout, and its past as the simulator lived
// it.
type DemoMeter struct {
	Serial    string
	Name      string
	IPAddress string // "" for no address
	Port      int
	Hardware  string
	Mode      string // "active" or "passive"
	Layout    string // register layout, as InsertRegisters takes it
	DST       bool   // daylight savings correction enabled

	// Past is what syncs would have read over the meter's simulated past,
	// oldest first (MeterID is filled in by SeedDemo). It is recorded
	// through the observation path, as the syncs would have recorded it.
	Past []flows.SyncResult
	// Topups are the top-ups the simulated customer made: completed
	// ledger rows with their tokens, as if pushed by Flows.
	Topups []DemoTopup
}

// DemoTopup is a completed top-up of a demo meter's past.
type DemoTopup struct {
	At            time.Time
	Amount        decimal.Decimal
	Token         string
	BalanceBefore decimal.Decimal
	BalanceAfter  decimal.Decimal
}

// SeedDemo inserts the demo ESCO, the meters' registry rows and registers
// (InsertRegisters), and each meter's past: its observations recorded as
// syncs record them (history through the triggers, freshness, health,
// events) and its top-ups in the ledger. It does nothing when an ESCO
// with esco.Code already exists (a restarted demo keeps its data), and
// otherwise runs in one transaction: nothing is half-written. It returns
// the ESCO's id.
func (s *Store) SeedDemo(ctx context.Context, esco DemoESCO, meters []DemoMeter) (string, error) {
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
		b := &pgx.Batch{}
		b.Queue(`SELECT set_config('flows.writer', 'sync', true)`)
		// The alert rules an ESCO would start with (no webhook: the API's
		// alert list; add one with POST /api/v1/alert-rules).
		b.Queue(`INSERT INTO flows.alert_rules (esco, name, kind, threshold, created_by) VALUES
			($1, 'Balance under £5', 'low_balance', 5, 'demo'),
			($1, 'Forecast to lose supply within 48 h', 'losing_supply', 48, 'demo'),
			($1, 'Off supply for lack of credit', 'self_disconnected', NULL, 'demo'),
			($1, 'Offline over 24 h', 'offline', 24, 'demo'),
			($1, 'Top-up or tariff push failed', 'push_failed', NULL, 'demo')`, escoID)
		for _, m := range meters {
			id, err := insertDemoMeter(ctx, tx, escoID, m)
			if err != nil {
				return translate(err, "meter "+m.Serial)
			}
			if err := InsertRegisters(ctx, tx, id, m.Layout); err != nil {
				return translate(err, "registers of "+m.Serial)
			}
			if len(m.Past) > 0 {
				// Commissioned when its simulated past began: interval
				// completeness counts from then, not from 30 days back.
				if _, err := tx.Exec(ctx, `UPDATE flows.meter_registers SET start_time = $2 WHERE meter_id = $1`,
					id, m.Past[0].At.UTC().Truncate(30*time.Minute)); err != nil {
					return translate(err, "registers of "+m.Serial)
				}
			}
			if err := s.queueDemoPast(b, id, m); err != nil {
				return err
			}
		}
		return translate(tx.SendBatch(ctx, b).Close(), "demo history")
	})
	return escoID, err
}

// queueDemoPast adds a meter's observations and top-ups to the batch.
func (s *Store) queueDemoPast(b *pgx.Batch, meterID string, m DemoMeter) error {
	for _, r := range m.Past {
		r.MeterID = meterID
		r.Invalid = append(r.Invalid, r.Shadow.DropInvalid()...)
		if err := s.queueObservation(b, r); err != nil {
			return err
		}
	}
	for _, t := range m.Topups {
		b.Queue(`INSERT INTO flows.topups (meter_id, amount, token, source, status, notes, attempts, balance_before, balance_after,
				requested_by, created_at, updated_at, used_at)
			VALUES ($1, $2, $3, 'payment', 'completed', $4, 1, $5, $6, 'demo-customer', $7, $7, $7)`,
			meterID, t.Amount, t.Token, fmt.Sprintf("Balance increased: %s -> %s (the simulated customer's top-up)",
				t.BalanceBefore.StringFixed(2), t.BalanceAfter.StringFixed(2)), t.BalanceBefore, t.BalanceAfter, t.At)
	}
	return nil
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
